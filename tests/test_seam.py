"""The seam between the C++ glue and the Rust core: what the core calls back
(progress, a file started, the interrupt check) may throw, as Nix's logger
can, and the process must not end; the fetch stops and the glue gets the
exception back once the core has returned. Run through tests/seam/seam.cc,
linked with the core and no Nix, against the stand-in."""

import os
import subprocess

import pytest

from harness import TOP

SEAM = os.path.join(TOP, "build", os.environ.get("NIX_HF_NIX_VERSION", ""), "seam-test")


@pytest.mark.parametrize("which", ["progress", "file", "interrupted"])
def test_an_exception_in_a_callback_comes_back_to_the_glue(hub, tmp_path, which):
    p = subprocess.run([SEAM, hub.url, str(tmp_path / "partial"), "nixhf/pieces", which],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"exit {p.returncode}: {p.stdout}{p.stderr}"
    assert f"rethrown: the {which} callback failed" in p.stdout
    # The core stopped as if interrupted, and kept what it had for the next run.
    assert "the core: interrupted by the user" in p.stdout, p.stdout
