"""The loader (the file plugin-files names) in the real nix: it loads the
build for exactly the running Nix (upstream Nix by its version, Determinate
Nix by its own), never another's, and when it has none, or the Nix is Lix,
it says so in one line and nix carries on. Each environment's Nix (2.34,
2.35, 2.36pre, Determinate 3.22) runs these against its own build and
stand-ins for the others'."""

import os
import shutil
import subprocess

import pytest

from harness import OWN_BUILD, PLUGIN, Nix, build_name, supported_nix

# Every supported Nix's build folder, this environment's included.
BUILDS = [build_name(version) for _, version in supported_nix()]

# A stand-in for a build of another version: loading it at all (its
# constructor runs at dlopen) leaves a file behind.
MARKER_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void loaded(void) {
    const char *p = getenv("NIX_HF_TEST_MARKER");
    FILE *f = p ? fopen(p, "w") : NULL;
    if (f) { fputs("loaded\n", f); fclose(f); }
}
void nix_plugin_entry(void) {}
"""

# What Determinate Nix defines beside upstream's nixVersion (its version made
# up, so that no build here is for it).
DETERMINATE_CC = r"""
#include <string>
namespace nix { extern const std::string determinateNixVersion; const std::string determinateNixVersion = "3.99.1"; }
"""

# What tells Lix: its plugins register primops with nix::PluginPrimOps::add.
LIX_CC = r"""
namespace nix { struct PrimOpDetails; struct PluginPrimOps { static void add(PrimOpDetails &&); };
                void PluginPrimOps::add(PrimOpDetails &&) {} }
"""


@pytest.fixture(scope="module")
def running(tmp_path_factory, standin):
    n = Nix(str(tmp_path_factory.mktemp("version")), standin.url)
    n.conf.pop("plugin-files")
    n.write_conf()
    return n.run("eval", "--raw", "--expr", "builtins.nixVersion").stdout


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("so")
    (d / "marker.c").write_text(MARKER_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(d / "marker.so"), str(d / "marker.c")], check=True)
    for name, code in [("determinate", DETERMINATE_CC), ("lix", LIX_CC)]:
        (d / f"{name}.cc").write_text(code)
        subprocess.run(["g++", "-shared", "-fPIC", "-o", str(d / f"{name}.so"), str(d / f"{name}.cc")], check=True)
    return d


def own_build():
    return os.path.join(os.path.dirname(os.path.dirname(PLUGIN)), "nix-hf", OWN_BUILD, "libnix-hf.so")


def which_nix(running):
    """The running Nix as the loader names it."""
    if OWN_BUILD.startswith("determinate-"):
        return f"Determinate Nix {OWN_BUILD.removeprefix('determinate-')} (Nix {running})"
    return f"Nix {running}"


def shown(build):
    return f"Determinate Nix {build.removeprefix('determinate-')}" if build.startswith("determinate-") else f"Nix {build}"


def tree(root, builds):
    """An installed tree: the loader, and {version: file} as its builds."""
    plugins = root / "lib" / "nix" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copy(PLUGIN, plugins / "libnix-hf.so")
    for version, so in builds.items():
        d = root / "lib" / "nix" / "nix-hf" / version
        d.mkdir(parents=True)
        shutil.copy(so, d / "libnix-hf.so")
    return str(plugins / "libnix-hf.so")


def others():
    """Stand-ins for every other supported Nix's build, and one for a Nix
    nix-hf does not support, named as theirs would be."""
    return [b for b in BUILDS if b != OWN_BUILD] + ["2.33.1"]


def with_loader(nix, loader, marker):
    nix.conf["plugin-files"] = loader
    nix.write_conf()
    nix.env["NIX_HF_TEST_MARKER"] = str(marker)


def test_the_environment_builds_for_its_own_nix():
    assert os.path.exists(own_build()), f"no build in {OWN_BUILD}/: meson named the build otherwise"


def test_the_build_for_the_running_nix_is_loaded_and_no_other(nix, tmp_path, running, compiled):
    # Determinate Nix reports the upstream version it is based on: an
    # upstream build of that version stands here too, and must not load.
    loader = tree(tmp_path / "pkg", {OWN_BUILD: own_build(), **{o: compiled / "marker.so" for o in others()}})
    with_loader(nix, loader, tmp_path / "marker")
    # glibc's own account of every object the process loads.
    trace = tmp_path / "ld-debug"
    p = nix.run("eval", "--expr", "builtins ? fetchHuggingFace",
                env={"LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(trace)})
    assert p.stdout.strip() == "true" and p.stderr == "", p.stderr
    loaded = "".join(open(os.path.join(tmp_path, f)).read() for f in os.listdir(tmp_path) if f.startswith("ld-debug"))
    assert f"file={tmp_path}/pkg/lib/nix/nix-hf/{OWN_BUILD}/libnix-hf.so" in loaded, "the running Nix's build is not loaded"
    for o in others():
        assert f"/nix-hf/{o}/" not in loaded, f"{o}'s build was loaded"
    assert not (tmp_path / "marker").exists(), "another Nix's build was loaded"


def test_a_nix_without_a_build_gets_one_line_and_carries_on(nix, tmp_path, running, compiled):
    loader = tree(tmp_path / "pkg", {o: compiled / "marker.so" for o in others()})
    with_loader(nix, loader, tmp_path / "marker")
    p = nix.run("eval", "--expr", "1")
    assert p.returncode == 0 and p.stdout.strip() == "1"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    line = lines[0]
    listed = ", ".join(shown(o) for o in sorted(others()))
    assert line.startswith(f"nix-hf: no build for {which_nix(running)} (this nix-hf has builds for {listed} in "), line
    assert "remove it from plugin-files" in line and "nix.package" in line
    assert not line.lower().startswith("warning")
    assert not (tmp_path / "marker").exists(), "a build for another version was loaded"
    assert nix.run("eval", "--expr", "builtins ? fetchHuggingFace").stdout.strip() == "false"


def test_a_determinate_nix_without_its_build_is_named_and_left_alone(nix, tmp_path, running, compiled):
    """A Determinate Nix nix-hf has no build for (3.99.1, made up) is not
    given the upstream build of the version it reports."""
    said = stepped_aside(nix, tmp_path, compiled, [running, OWN_BUILD], "determinate.so")
    assert said.startswith(f"nix-hf: no build for Determinate Nix 3.99.1 (Nix {running})"), said


def test_lix_is_recognised_and_left_alone(nix, tmp_path, running, compiled):
    said = stepped_aside(nix, tmp_path, compiled, [OWN_BUILD, running], "lix.so")
    assert said.startswith(f"nix-hf: this is Lix {running}, whose plugin API"), said


def stepped_aside(nix, tmp_path, compiled, builds, preload):
    """What the loader says, in its one line, in a Nix that `preload` makes
    report itself otherwise, with builds for `builds` that would leave a
    marker if loaded: none is."""
    loader = tree(tmp_path / "pkg", {b: compiled / "marker.so" for b in builds})
    with_loader(nix, loader, tmp_path / "marker")
    p = nix.run("eval", "--expr", "1", env={"LD_PRELOAD": str(compiled / preload)})
    assert p.stdout.strip() == "1"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert not (tmp_path / "marker").exists(), f"a build was loaded into the Nix {preload} makes"
    return lines[0]


def test_a_broken_build_gets_one_line(nix, tmp_path, running):
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an ELF file")
    with_loader(nix, tree(tmp_path / "pkg", {OWN_BUILD: junk}), tmp_path / "marker")
    p = nix.run("eval", "--expr", "1")
    assert p.stdout.strip() == "1"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nix-hf: cannot load ") and "plugin-files" in lines[0], p.stderr


def test_plugin_files_may_name_the_loaders_folder(nix, tmp_path, running):
    loader = tree(tmp_path / "pkg", {OWN_BUILD: own_build()})
    nix.conf["plugin-files"] = os.path.dirname(loader)
    nix.write_conf()
    p = nix.run("eval", "--expr", "builtins ? fetchHuggingFace")
    assert p.stdout.strip() == "true" and p.stderr == ""


def test_the_loader_uses_nothing_of_nix_and_exports_one_symbol():
    needed = subprocess.run(["readelf", "-d", PLUGIN], capture_output=True, text=True, check=True).stdout
    assert "libnix" not in needed, needed
    symbols = subprocess.run(["nm", "-D", "--defined-only", PLUGIN], capture_output=True, text=True, check=True).stdout
    assert [line.split()[-1] for line in symbols.splitlines() if " T " in line] == ["nix_plugin_entry"], symbols
