"""Through a nix-daemon: the daemon runs as root on its own store, the client
(with the plugin) as an unprivileged user with --store daemon, as on NixOS.
Fetching happens in the client; the snapshot reaches the store through the
daemon."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from harness import PLUGIN, wait_for

USER = "nixhftest"


@pytest.fixture
def daemon(standin):
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", USER], check=True)
    pw = pwd.getpwnam(USER)
    # Outside pytest's private tmp: the user must reach its own files.
    root = tempfile.mkdtemp(prefix="nixhf-daemon.", dir="/tmp")
    os.chmod(root, 0o755)
    conf = os.path.join(root, "etc")
    os.makedirs(conf)
    with open(os.path.join(conf, "nix.conf"), "w") as f:
        f.write("build-users-group =\nexperimental-features = nix-command flakes\nsubstituters =\n"
                "flake-registry =\nsandbox = false\n")
    socket = os.path.join(root, "socket")
    env = {"PATH": os.environ["PATH"], "NIX_CONF_DIR": conf, "NIX_DAEMON_SOCKET_PATH": socket, "HOME": "/root"}
    # The daemon's store at /nix, as on a real machine (clients read store
    # paths from the file system), for this test only: tests run in
    # dev/nix-env's private mount namespace, so the mount goes with it.
    store = os.path.join(root, "store")
    os.makedirs(os.path.join(store, "nix"))
    os.makedirs("/nix", exist_ok=True)
    subprocess.run(["mount", "--bind", os.path.join(store, "nix"), "/nix"], check=True)
    # A store that exists, as on an installed machine (Nix 2.35's daemon no
    # longer creates /nix/store for its first client).
    subprocess.run(["nix", "store", "info", "--store", "local"], env=env, check=True, capture_output=True)
    d = subprocess.Popen(["nix", "daemon"], env=env, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(root, "daemon.log"), "w"))
    wait_for("the nix-daemon's socket", lambda: os.path.exists(socket) or d.poll() is not None)
    assert d.poll() is None, open(os.path.join(root, "daemon.log")).read()
    os.chmod(socket, 0o666)
    home = os.path.join(root, "home")
    os.makedirs(home)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    client_conf = os.path.join(root, "client-etc")
    os.makedirs(client_conf)
    with open(os.path.join(client_conf, "nix.conf"), "w") as f:
        f.write(f"plugin-files = {PLUGIN}\nexperimental-features = nix-command flakes\nstore = daemon\n"
                "flake-registry =\n")
    client_env = {"PATH": os.environ["PATH"], "HOME": home, "XDG_CACHE_HOME": os.path.join(home, ".cache"),
                  "NIX_CONF_DIR": client_conf, "NIX_DAEMON_SOCKET_PATH": socket, "HF_ENDPOINT": standin.url}

    def run(*args, cwd=None, check=True):
        p = subprocess.run(["nix", *args], env=client_env, cwd=cwd, capture_output=True, text=True,
                           user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], timeout=300)
        if check and p.returncode:
            raise AssertionError(f"nix {' '.join(args)} as {USER} failed:\n{p.stderr}")
        return p

    yield run, store, home, pw
    d.terminate()
    d.wait(10)
    subprocess.run(["umount", "/nix"])
    shutil.rmtree(root, ignore_errors=True)


def test_fetch_and_lock_through_the_daemon(daemon, expected):
    run, store, home, pw = daemon
    attrs = json.loads(run("eval", "--impure", "--json", "--expr",
                           'let r = builtins.fetchTree "hf:nixhf/tiny"; in { inherit (r) rev narHash; p = r.outPath; }'
                           ).stdout)
    assert attrs["rev"] == expected[("model", "nixhf/tiny")].resolve("main").sha
    # The path is valid in the daemon's store and owned by it, not the user.
    info = os.stat(attrs["p"])
    assert info.st_uid == 0
    assert run("path-info", attrs["p"]).stdout.strip() == attrs["p"]
    flake = os.path.join(home, "flake")
    os.makedirs(flake)
    with open(os.path.join(flake, "flake.nix"), "w") as f:
        f.write('{ inputs.m = { url = "hf:nixhf/tiny"; flake = false; }; outputs = { self, m }: { }; }')
    os.chown(flake, pw.pw_uid, pw.pw_gid)
    os.chown(os.path.join(flake, "flake.nix"), pw.pw_uid, pw.pw_gid)
    run("flake", "lock", cwd=flake)
    locked = json.load(open(os.path.join(flake, "flake.lock")))["nodes"]["m"]["locked"]
    assert locked["narHash"] == attrs["narHash"] and locked["rev"] == attrs["rev"]
