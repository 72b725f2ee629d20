"""The test harness, shared by the tests (through conftest.py's fixtures)
and by bench/: the Hub stand-in as a separate process on loopback, a `nix`
runner that loads the freshly built plugin into the real nix with an
isolated store, configuration and caches, and helpers that wait on events
(the stand-in's request log, files) rather than on time."""

import json
import os
import pwd
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

from standin import xet

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(TOP, "tests")
# The installed tree dev/prepare makes: the loader, and the builds beside it.
PLUGIN = os.environ.get("NIX_HF_PLUGIN", os.path.join(TOP, "build", "plugin", "lib", "nix", "plugins", "libnix-hf.so"))


def supported_nix():
    """nix/versions, the supported Nix releases: [(release, exact version)]."""
    with open(os.path.join(TOP, "nix", "versions")) as f:
        return [tuple(line.split()[:2]) for line in f if line.strip() and not line.startswith("#")]


def build_name(version):
    """The folder a build for the Nix of nix/versions' `version` is installed
    in (and the loader looks for): its version, or determinate-<version>."""
    return "determinate-" + version.removeprefix("det-") if version.startswith("det-") else version


# The build of the environment's Nix (dev/nix-env says which it is).
OWN_BUILD = build_name(os.environ.get("NIX_HF_NIX_VERSION", ""))

# The nix-hf program (README, Without the plugin), as dev/prepare installs it.
PROGRAM = os.environ.get("NIX_HF_PROGRAM", os.path.join(TOP, "build", "plugin", "bin", "nix-hf"))
# nix/lib.nix running that program, as the tests call it.
LIB_NIX = os.path.join(TOP, "nix", "lib.nix")
ANY_NIX = f'(import {LIB_NIX} {{ programFor = _: "{PROGRAM}"; }})'



# Hugging Face's local CAS server, which dev/prepare installs: every test
# run has the Xet-backed repos in Xet (the stand-in stops if it is missing).
XET_CAS = os.environ.get("NIX_HF_XET_CAS", xet.default_binary())


class Standin:
    """A running stand-in: its URLs and its admin switches."""

    def __init__(self, workdir, extra_args=()):
        self.workdir = workdir
        ready = os.path.join(workdir, "ready.json")
        self.log_path = os.path.join(workdir, "requests.jsonl")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "standin", "--ready-file", ready, "--log-file", self.log_path,
             "--xet-cas", XET_CAS, *extra_args],
            cwd=TESTS, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "standin.err"), "w"),
        )
        err = os.path.join(workdir, "standin.err")
        # Long only for the benchmark's big Xet fixtures, which it uploads first.
        wait_for("the stand-in to listen", lambda: os.path.exists(ready) or self.proc.poll() is not None, timeout=1800)
        if not os.path.exists(ready):
            raise RuntimeError("stand-in did not start: " + open(err).read())
        info = json.load(open(ready))
        self.url, self.cdn, self.cas = info["hub"], info["cdn"], info["cas"]

    def admin(self, what, data=None, method=None):
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(f"{self.url}/_standin/{what}", data=body,
                                     method=method or ("POST" if body is not None else "GET"))
        # The harness talking to its own server: an https stand-in's throwaway
        # CA is what the plugin is tested with, not what this checks.
        with urllib.request.urlopen(req, context=ssl._create_unverified_context()) as r:
            return json.load(r)

    def faults(self, *rules):
        return self.admin("faults", list(rules))

    def settings(self, **kw):
        return self.admin("settings", kw)

    def requests(self):
        return self.admin("log")

    def clear_log(self):
        self.admin("log", method="DELETE")

    def commit(self, repo, files, branch="main", kind="model", message="update"):
        return self.admin("commit", {"repo": repo, "kind": kind, "branch": branch, "files": files, "message": message})

    def reset(self):
        self.admin("faults", method="DELETE")
        self.settings(url_ttl=3600, cdn_rate=0, link_rate=0, page_size=1000, latency=0, git=True, xet_token_ttl=3600,
                      xet=True)
        self.clear_log()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Nix:
    """Runs the real nix with the plugin loaded, against its own store,
    configuration, home and caches (nothing from the machine leaks in)."""

    def __init__(self, root, endpoint):
        self.root = root
        self.home = os.path.join(root, "home")
        self.store = os.path.join(root, "store")
        self.conf_dir = os.path.join(root, "etc")
        os.makedirs(self.home, exist_ok=True)
        os.makedirs(self.conf_dir, exist_ok=True)
        self.conf = {
            "plugin-files": PLUGIN,
            "experimental-features": "nix-command flakes",
            "build-users-group": "",
            "substituters": "",
            "flake-registry": "",
            "sandbox": "false",
            "store": self.store,
        }
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": self.home,
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_DATA_HOME": os.path.join(self.home, ".local/share"),
            "NIX_CONF_DIR": self.conf_dir,
            "HF_ENDPOINT": endpoint,
            "LANG": "C.UTF-8",
            "TERM": "dumb",
        }
        self.write_conf()

    def write_conf(self):
        with open(os.path.join(self.conf_dir, "nix.conf"), "w") as f:
            for k, v in self.conf.items():
                f.write(f"{k} = {v}\n")

    def run(self, *args, check=True, env=None, cwd=None, input=None, timeout=600):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run(["nix", *args], env=e, cwd=cwd, input=input, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"nix {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
        return p

    def eval(self, expr, *extra, impure=True, **kw):
        args = ["eval", "--json", *(["--impure"] if impure else []), "--expr", expr, *extra]
        p = self.run(*args, **kw)
        return json.loads(p.stdout) if p.returncode == 0 else p

    def attr(self, installable, cwd, *extra):
        """`nix eval --json INSTALLABLE` (pure, as flakes evaluate)."""
        return json.loads(self.run("eval", "--json", installable, *extra, cwd=cwd).stdout)

    def fails(self, *args, **kw):
        p = self.run(*args, check=False, **kw)
        assert p.returncode != 0, f"nix {' '.join(args)} succeeded but should have failed:\n{p.stdout}"
        return p

    def real_path(self, store_path):
        """Where a store path of the test store lives on disk."""
        return self.store + store_path


class Bare(Nix):
    """The real nix without the plugin, as Lix or a teammate's Nix would
    evaluate, on a store at the real /nix/store (bind-mounted from `root`
    while it lives) so that builds run unsandboxed and see the program in
    the build tree. Needs dev/nix-env's private mount namespace."""

    def __init__(self, root, endpoint):
        super().__init__(root, endpoint)
        del self.conf["plugin-files"]
        self.conf["store"] = "local"
        self.write_conf()
        os.makedirs(os.path.join(self.store, "nix"), exist_ok=True)
        os.makedirs("/nix", exist_ok=True)
        subprocess.run(["mount", "--bind", os.path.join(self.store, "nix"), "/nix"], check=True)

    def build(self, expr, *extra, **kw):
        """`nix build` of `expr`: its one output path (or the failed process)."""
        p = self.run("build", "--impure", "--no-link", "--print-out-paths", "--expr", expr, *extra, check=False, **kw)
        return p.stdout.strip() if p.returncode == 0 else p

    def real_path(self, store_path):
        return store_path

    def stop(self):
        subprocess.run(["umount", "/nix"])


def program(*args, env=None, check=True, timeout=600):
    """Runs the nix-hf program: the finished process (stdout, stderr, returncode)."""
    p = subprocess.run([PROGRAM, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"nix-hf {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p


class Daemon:
    """A nix-daemon as root on its own store at /nix, and a client (the
    plugin loaded, store = daemon) as an unprivileged user, as on NixOS.
    Needs root and a private mount namespace (dev/nix-env gives both)."""

    USER = "nixhftest"

    def __init__(self, endpoint):
        if subprocess.run(["id", self.USER], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--create-home", self.USER], check=True)
        # Outside pytest's private tmp: the user must reach its own files.
        root = tempfile.mkdtemp(prefix="nixhf-daemon.", dir="/tmp")
        os.chmod(root, 0o755)
        self.root = root
        self.pw = pwd.getpwnam(self.USER)
        self.store = os.path.join(root, "store")
        self.home = os.path.join(root, "home")
        self.log = os.path.join(root, "daemon.log")
        conf = os.path.join(root, "etc")
        os.makedirs(conf)
        with open(os.path.join(conf, "nix.conf"), "w") as f:
            f.write("build-users-group =\nexperimental-features = nix-command flakes\nsubstituters =\n"
                    "flake-registry =\nsandbox = false\n")
        socket = os.path.join(root, "socket")
        env = {"PATH": os.environ["PATH"], "NIX_CONF_DIR": conf, "NIX_DAEMON_SOCKET_PATH": socket, "HOME": "/root"}
        # The daemon's store at /nix, as on a real machine (clients read store
        # paths from the file system), while it runs: callers run in
        # dev/nix-env's private mount namespace, so the mount goes with it.
        os.makedirs(os.path.join(self.store, "nix"))
        os.makedirs("/nix", exist_ok=True)
        subprocess.run(["mount", "--bind", os.path.join(self.store, "nix"), "/nix"], check=True)
        # A store that exists, as on an installed machine (Nix 2.35's daemon no
        # longer creates /nix/store for its first client).
        subprocess.run(["nix", "store", "info", "--store", "local"], env=env, check=True, capture_output=True)
        self.proc = subprocess.Popen(["nix", "daemon"], env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        wait_for("the nix-daemon's socket", lambda: os.path.exists(socket) or self.proc.poll() is not None)
        assert self.proc.poll() is None, open(self.log).read()
        os.chmod(socket, 0o666)
        os.makedirs(self.home)
        os.chown(self.home, self.pw.pw_uid, self.pw.pw_gid)
        client_conf = os.path.join(root, "client-etc")
        os.makedirs(client_conf)
        with open(os.path.join(client_conf, "nix.conf"), "w") as f:
            f.write(f"plugin-files = {PLUGIN}\nexperimental-features = nix-command flakes\nstore = daemon\n"
                    "flake-registry =\n")
        self.env = {"PATH": os.environ["PATH"], "HOME": self.home, "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
                    "NIX_CONF_DIR": client_conf, "NIX_DAEMON_SOCKET_PATH": socket, "HF_ENDPOINT": endpoint}

    def start(self, *args, env=None, cwd=None):
        return subprocess.Popen(["nix", *args], env=dict(self.env, **(env or {})), cwd=cwd, user=self.pw.pw_uid,
                                group=self.pw.pw_gid, extra_groups=[], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def run(self, *args, env=None, cwd=None, check=True):
        """`nix ARGS` as the user: (stdout, stderr, exit status)."""
        p = self.start(*args, env=env, cwd=cwd)
        out, err = p.communicate(timeout=300)
        if check and p.returncode:
            raise AssertionError(f"nix {' '.join(args)} as {self.USER} failed:\n{err}")
        return out, err, p.returncode

    def waited(self, *args, env=None):
        """`nix ARGS` as the user: its stdout, and its resource usage (the
        bytes it wrote, its peak memory) as the kernel accounts them."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.Popen(["nix", *args], env=dict(self.env, **(env or {})), user=self.pw.pw_uid,
                                 group=self.pw.pw_gid, extra_groups=[], stdout=out, stderr=err, text=True)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            if p.returncode:
                raise AssertionError(f"nix {' '.join(args)} as {self.USER} failed:\n{err.read()[-3000:]}")
            return out.read(), usage

    def eval(self, expr, *extra, **kw):
        return json.loads(self.run("eval", "--impure", "--json", "--expr", expr, *extra, **kw)[0])

    def partial(self):
        return os.path.join(self.home, ".cache", "nix", "nix-hf", "partial")

    def partial_files(self):
        """What the client keeps of partial fetches (the lock files aside)."""
        return [n for _, _, ns in os.walk(self.partial()) for n in ns if not n.endswith(".lock")]

    def valid_sources(self):
        out, _, _ = self.run("path-info", "--all")
        return [p for p in out.split() if p.endswith("-source")]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        subprocess.run(["umount", "/nix"])
        shutil.rmtree(self.root, ignore_errors=True)


def tree_of(path):
    """{relative path: bytes} of every file below `path`."""
    out = {}
    for d, _, names in os.walk(path):
        for n in names:
            full = os.path.join(d, n)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return out


def files_of(repo, rev="main"):
    c = repo.resolve(rev)
    return {p: e.blob.read_all() for p, e in c.files.items()}




# The snapshot most transfer and fault tests fetch: two 40 MiB LFS shards
# (five 8 MiB pieces each) and two small files.
PIECES = '(builtins.fetchTree "hf:nixhf/pieces").narHash'
PIECES_REPO = "nixhf/pieces=2x40MiB"
PIECE = 8 << 20
SHARD = 40 << 20


def cdn_bytes(hub, path=""):
    """Bytes the CDN sent (of files whose path has `path` in it)."""
    return sum(q["bytes"] for q in hub.requests() if q["server"] == "cdn" and path in q["path"])


def range_start(q):
    """The first byte a logged request asked for."""
    return int(q["range"].split("=")[1].split("-")[0])


def xorb_bytes(hub):
    """Bytes of xorbs the stand-in's Xet CAS sent."""
    return sum(q["bytes"] for q in hub.requests() if q["server"] == "cas" and "fetch_term" in q["path"])


def start_fetch(nix, *extra, env=None, expr=PIECES):
    """A `nix eval` of `expr` in the background."""
    env = dict(nix.env, **(env or {}))
    return subprocess.Popen(["nix", "eval", "--impure", "--expr", expr, *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(what, ready, timeout=120):
    """Waits until `ready()` is true: an event in a log or on disk. The
    timeout only guards against a hang; it asserts nothing about speed."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def wait_for_cdn_bytes(hub, at_least):
    wait_for(f"{at_least} bytes from the CDN", lambda: sum(
        q["bytes"] for q in hub.requests() if q["server"] == "cdn" and q["status"] == 206) >= at_least)


def sources(nix):
    """The snapshots in a test store."""
    d = os.path.join(nix.store, "nix", "store")
    return [n for n in os.listdir(d) if n.endswith("-source")] if os.path.isdir(d) else []


def partial_files(nix):
    root = os.path.join(nix.env["XDG_CACHE_HOME"], "nix", "nix-hf", "partial")
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.join(d, n) for n in names if not n.endswith(".lock")]
    return out


def recorded_pieces(nix, size):
    """How many pieces of files of `size` bytes the partial directory's
    records say are on disk (records are named <digest>-<size>.pieces)."""
    return sum(len(open(f).read().split()) for f in partial_files(nix) if f.endswith(f"-{size}.pieces"))


# nixpkgs' lib, mounted by dev/nix-env (NIX_HF_NIXPKGS_LIB).
NIXPKGS_LIB = "/opt/nixpkgs-lib"
SYSTEMS = ["x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin"]
# tests/nix's stand-in for nixpkgs' packages, as an expression over `lib`.
STUB_PKGS = f'import {TESTS}/nix/stub-pkgs.nix {{ inherit lib; system = "x86_64-linux"; }}'


def modules_expr(host, modules, then):
    """An expression: `modules` (Nix expressions) evaluated by nixpkgs' real
    lib.evalModules over `host`, a stand-in in tests/nix for the options of
    NixOS or home-manager, with the stub packages; then `then`, an
    expression over `lib`, `pkgs` and the resulting `config`."""
    return f"""
      let
        lib = import {NIXPKGS_LIB}/lib;
        pkgs = {STUB_PKGS};
        config = (lib.evalModules {{
          modules = [ {TESTS}/nix/{host} {" ".join(f"({m})" for m in modules)} ];
          specialArgs = {{ inherit pkgs; }};
        }}).config;
      in {then}
    """


def stub_nixpkgs(root):
    """A stand-in nixpkgs flake in `root`: nixpkgs' real lib and the stub
    packages of tests/nix, for evaluating flakes where nixpkgs cannot be
    fetched. Returns `--override-input nixpkgs …` for nix."""
    os.makedirs(root, exist_ok=True)
    for f in ["stub-pkgs.nix", "stub-nixos.nix"]:
        shutil.copy(os.path.join(TESTS, "nix", f), os.path.join(root, f))
    systems = " ".join(f'"{s}"' for s in SYSTEMS)
    with open(os.path.join(root, "flake.nix"), "w") as f:
        f.write(f"""{{
  inputs.lib.url = "path:{NIXPKGS_LIB}";
  outputs = {{ self, lib }}: {{
    lib = lib.lib;
    legacyPackages = lib.lib.genAttrs [ {systems} ]
      (system: import ./stub-pkgs.nix {{ lib = lib.lib; inherit system; }});
  }};
}}
""")
    return ["--override-input", "nixpkgs", f"path:{root}"]


def copy_checkout(dst):
    """The checkout's files, without builds, as a path flake."""
    shutil.copytree(TOP, dst, ignore=shutil.ignore_patterns("build", ".git", ".scratch", "__pycache__", "target"))
    return str(dst)


def offline_python(code, cache, tmp_path, *args):
    """Runs Python `code` with `cache` as HF_HUB_CACHE, offline, and no Hub
    that could answer; returns its last line of output as JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HUB_CACHE=cache, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9",
               HF_HOME=str(tmp_path / "hf-home"), HF_DATASETS_CACHE=str(tmp_path / "datasets"),
               HF_HUB_DISABLE_TELEMETRY="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])
