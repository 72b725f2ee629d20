"""Shared fixtures: the Hub stand-in as a separate process on loopback, and a
`nix` runner that loads the freshly built plugin into the real nix with an
isolated store, configuration and caches."""

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(TOP, "tests")
# The installed tree dev/prepare makes: the loader, and the builds beside it.
PLUGIN = os.environ.get("NIX_HF_PLUGIN", os.path.join(TOP, "build", "plugin", "lib", "nix", "plugins", "libnix-hf.so"))

sys.path.insert(0, TESTS)
from standin import fixtures  # noqa: E402


class Standin:
    """A running stand-in: its URLs and its admin switches."""

    def __init__(self, workdir, extra_args=()):
        self.workdir = workdir
        ready = os.path.join(workdir, "ready.json")
        self.log_path = os.path.join(workdir, "requests.jsonl")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "standin", "--ready-file", ready, "--log-file", self.log_path, *extra_args],
            cwd=TESTS, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "standin.err"), "w"),
        )
        deadline = time.time() + 120
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("stand-in did not start: " + open(os.path.join(workdir, "standin.err")).read())
            time.sleep(0.05)
        info = json.load(open(ready))
        self.url, self.cdn = info["hub"], info["cdn"]

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
        self.settings(url_ttl=3600, cdn_rate=0, page_size=1000)
        self.clear_log()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    s = Standin(str(tmp_path_factory.mktemp("standin")), ["--synthetic", "nixhf/throughput=1x1GiB", "--synthetic", "nixhf/pieces=2x40MiB"])
    yield s
    s.stop()


@pytest.fixture
def hub(standin):
    """The session's stand-in, with faults, settings and log reset."""
    standin.reset()
    yield standin
    standin.reset()


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


@pytest.fixture
def nix(tmp_path, standin):
    return Nix(str(tmp_path), standin.url)


@pytest.fixture(scope="session")
def expected():
    """The stand-in's repositories, built in-process from the same
    deterministic fixtures, to check what clients receive."""
    cache = os.path.join(tempfile.gettempdir(), "nix-hf-test-hashes.json")
    return fixtures.build(cache)


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


@pytest.fixture
def scratch(tmp_path):
    d = tmp_path / "scratch"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)
