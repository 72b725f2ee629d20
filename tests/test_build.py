"""meson.build takes Nix's version from pkg-config in whatever form it
comes (2.35.2, 2.36.0pre…, +N), tells Determinate Nix by its headers and
names its build by Determinate's own version, and refuses a Nix it cannot
build with a message, not a compiler error. Checked by configuring against
the environment's Nix with its .pc files' versions rewritten. (That each
supported Nix compiles is each environment's own build: dev/prepare, with
test_loader checking where it is installed.)"""

import os
import re
import subprocess

import pytest

from harness import OWN_BUILD, TOP

PC = "/opt/nix/lib/x86_64-linux-gnu/pkgconfig"
DETERMINATE = OWN_BUILD.startswith("determinate-")
SUPPORTED = "upstream Nix 2.34, 2.35, 2.36 and Determinate Nix 3.22 (nix/versions)"


def configure(tmp_path, version=None, *options):
    fake = tmp_path / "pkgconfig"
    fake.mkdir()
    for name in os.listdir(PC):
        text = open(os.path.join(PC, name)).read()
        if version:
            text = re.sub(r"^Version: .*$", f"Version: {version}", text, flags=re.M)
        (fake / name).write_text(text)
    env = dict(os.environ, PKG_CONFIG_PATH=str(fake))
    return subprocess.run(["meson", "setup", str(tmp_path / "build"), TOP, *options], env=env, capture_output=True,
                          text=True)


@pytest.mark.parametrize("version,minor", [("2.36.0pre20260813_8529b7a", "36"), ("2.35.2+1", "35"), ("2.34.8", "34")])
def test_any_version_form_gives_plain_macros(tmp_path, version, minor):
    p = configure(tmp_path, version)
    assert p.returncode == 0, p.stdout + p.stderr
    ninja = open(tmp_path / "build" / "build.ninja").read()
    assert set(re.findall(r"-DNIXHF_NIX_MINOR=(\S*)", ninja)) == {minor}
    assert set(re.findall(r"-DNIXHF_NIX_MAJOR=(\S*)", ninja)) == {"2"}
    assert set(re.findall(r"-DNIXHF_DETERMINATE=(\S*)", ninja)) == {"1" if DETERMINATE else "0"}
    # The build installs into the folder the loader looks for: the exact
    # version, or for Determinate Nix (whose headers say so, whatever the
    # .pc files say) its own.
    folder = OWN_BUILD if DETERMINATE else version
    assert f"/nix/nix-hf/{folder}/libnix-hf.so" in open(tmp_path / "build" / "meson-info" / "intro-installed.json").read()


def test_the_environments_nix_is_told_apart_and_named(tmp_path):
    p = configure(tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    ninja = open(tmp_path / "build" / "build.ninja").read()
    assert set(re.findall(r"-DNIXHF_DETERMINATE=(\S*)", ninja)) == {"1" if DETERMINATE else "0"}
    installed = open(tmp_path / "build" / "meson-info" / "intro-installed.json").read()
    assert f"/nix/nix-hf/{OWN_BUILD}/libnix-hf.so" in installed, installed


@pytest.mark.parametrize("version", ["2.33.1", "2.37.0"])
def test_an_unsupported_nix_is_refused_with_a_message(tmp_path, version):
    if DETERMINATE:
        # Its headers say Determinate whatever the .pc says: an unsupported
        # Determinate release is one it calls itself.
        p = configure(tmp_path, None, f"-Ddeterminate_version={version.replace('2.', '3.', 1)}")
        found = f"Determinate Nix {version.replace('2.', '3.', 1)} (Nix 2.35.2)"
    else:
        p = configure(tmp_path, version)
        found = f"Nix {version}"
    assert p.returncode != 0
    assert f"nix-hf supports {SUPPORTED}, and pkg-config found {found} (nix-store.pc)" in p.stdout + p.stderr
