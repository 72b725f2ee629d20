"""meson.build takes Nix's version from pkg-config in whatever form it
comes (2.35.2, 2.36.0pre…, +N) and refuses a Nix it cannot support with a
message, not a compiler error. Checked by configuring against the
environment's Nix with its .pc files' versions rewritten."""

import os
import re
import subprocess

import pytest

from harness import TOP, supported_nix

PC = "/opt/nix/lib/x86_64-linux-gnu/pkgconfig"


def configure(tmp_path, version):
    fake = tmp_path / "pkgconfig"
    fake.mkdir()
    for name in os.listdir(PC):
        text = open(os.path.join(PC, name)).read()
        (fake / name).write_text(re.sub(r"^Version: .*$", f"Version: {version}", text, flags=re.M))
    env = dict(os.environ, PKG_CONFIG_PATH=str(fake))
    return subprocess.run(["meson", "setup", str(tmp_path / "build"), TOP], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("version,minor", [("2.36.0pre20260813_8529b7a", "36"), ("2.35.2+1", "35"), ("2.34.8", "34")])
def test_any_version_form_gives_plain_macros(tmp_path, version, minor):
    p = configure(tmp_path, version)
    assert p.returncode == 0, p.stdout + p.stderr
    ninja = open(tmp_path / "build" / "build.ninja").read()
    assert set(re.findall(r"-DNIXHF_NIX_MINOR=(\S*)", ninja)) == {minor}
    assert set(re.findall(r"-DNIXHF_NIX_MAJOR=(\S*)", ninja)) == {"2"}
    newest = supported_nix()[-1][0]
    newer = f"Nix {version} is newer than the newest Nix nix-hf is tested with ({newest})"
    assert (newer in p.stdout) == (minor == "36"), p.stdout
    # The build installs into the folder the loader looks for: the exact version.
    assert f"/nix/nix-hf/{version}/libnix-hf.so" in open(tmp_path / "build" / "meson-info" / "intro-installed.json").read()


def test_an_older_nix_is_refused_with_a_message(tmp_path):
    p = configure(tmp_path, "2.33.1")
    assert p.returncode != 0
    releases = " and ".join(release for release, _ in supported_nix())
    assert f"nix-hf supports Nix {releases}, and pkg-config found Nix 2.33.1" in p.stdout + p.stderr
