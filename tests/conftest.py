"""The fixtures of the tests: the Hub stand-in, a `nix` per test, the
stand-in's repositories as the tests expect them. What they are built from
is in harness.py."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PIECES_REPO, PLUGIN, Bare, Nix, Standin, files_of, tree_of  # noqa: E402,F401
from standin import fixtures  # noqa: E402


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    s = Standin(str(tmp_path_factory.mktemp("standin")), ["--synthetic", PIECES_REPO])
    yield s
    s.stop()


@pytest.fixture
def hub(standin):
    """The session's stand-in, with faults, settings and log reset."""
    standin.reset()
    yield standin
    standin.reset()


@pytest.fixture
def nix(tmp_path, standin):
    return Nix(str(tmp_path), standin.url)


@pytest.fixture
def bare(tmp_path, standin):
    """The real nix without the plugin, its store at /nix (harness.Bare)."""
    b = Bare(str(tmp_path / "bare"), standin.url)
    yield b
    b.stop()


@pytest.fixture
def at_nix_store(nix):
    """The test store's /nix mounted at /nix for this test, so that links to
    /nix/store/… (a hub cache's, say) resolve for programs outside nix.
    Tests run in dev/nix-env's private mount namespace."""
    nix.run("eval", "--expr", "1")  # the store exists
    os.makedirs("/nix", exist_ok=True)
    subprocess.run(["mount", "--bind", os.path.join(nix.store, "nix"), "/nix"], check=True)
    yield
    subprocess.run(["umount", "/nix"], check=True)


@pytest.fixture(scope="session")
def expected():
    """The stand-in's repositories, built in-process from the same
    deterministic fixtures, to check what clients receive."""
    cache = os.path.join(tempfile.gettempdir(), "nix-hf-test-hashes.json")
    return fixtures.build(cache)


@pytest.fixture
def scratch(tmp_path):
    d = tmp_path / "scratch"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)
