"""flake.nix and the NixOS / nix-darwin / home-manager module, evaluated as
far as these machines allow: nixpkgs cannot be fetched here, so the module
runs under nixpkgs' real lib (lib.evalModules) over stand-ins for the host
options it sets and for `pkgs` (tests/nix/), and the flake is checked by the
real nix with its nixpkgs input overridden by such a stand-in. Building the
packages and running the VM test need a machine with nixpkgs."""

import json
import os

import pytest

from harness import (NIXPKGS_LIB as LIB, PLUGIN, STUB_PKGS, SYSTEMS, TOP, copy_checkout, modules_expr,
                     stub_nixpkgs)

MODULE = f"{TOP}/nix/module.nix"


@pytest.fixture(scope="module", autouse=True)
def nixpkgs_lib():
    assert os.path.exists(os.path.join(LIB, "lib", "default.nix")), \
        "nixpkgs' lib is not at /opt/nixpkgs-lib: set NIX_HF_NIXPKGS_LIB (see dev/nix-env)"


def evaluate(nix, modules, then="config"):
    """`then` (an expression over `config`, `cfg`, `pkgs`, `failed`) of the module
    evaluated with `modules` (Nix expressions) on top."""
    return nix.eval(modules_expr("stub-nixos.nix", [MODULE, *modules], f"""
      let
        cfg = config.programs.nix-hf;
        failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
      in {then}"""))


def test_the_module_loads_the_plugin_built_for_nix_package(nix):
    r = evaluate(nix, ["{ programs.nix-hf.enable = true; }"],
                 "{ inherit (config.nix) settings; inherit failed; version = cfg.package.nixVersion; "
                 "package = toString cfg.package; }")
    assert r["failed"] == []
    assert r["version"] == "2.34.8", "built for the default nix.package"
    assert r["settings"] == {"plugin-files": [f"{r['package']}/lib/nix/plugins/libnix-hf.so"]}, \
        "no plugin setting is written unless asked for"
    r = evaluate(nix, ["{ pkgs, ... }: { programs.nix-hf.enable = true; nix.package = pkgs.nixVersions.nix_2_35; }"],
                 "cfg.package.nixVersion")
    assert r == "2.35.2"


def test_determinate_nix_gets_its_own_build(nix):
    """nix.package as determinate.nixosModules.default sets it: the module
    builds nix-hf against Determinate Nix's own libraries, named by its own
    version, where the loader looks for it."""
    r = evaluate(nix, ["{ pkgs, ... }: { programs.nix-hf.enable = true; nix.package = pkgs.determinate-nix; }"],
                 "{ inherit failed; build = cfg.package.buildName; drv = cfg.package.drvPath; "
                 "plugin = builtins.elemAt config.nix.settings.plugin-files 0; package = toString cfg.package; }")
    assert r["failed"] == []
    assert r["build"] == "determinate-3.22.2"
    assert r["plugin"] == f"{r['package']}/lib/nix/plugins/libnix-hf.so"
    shown = nix.run("derivation", "show", r["drv"]).stdout
    drv = next(iter(json.loads(shown).get("derivations", json.loads(shown)).values()))
    assert "-Ddeterminate_version=3.22.2" in json.dumps(drv["env"]), "meson is told Determinate's own version"
    assert "determinate-nix-store-3.22.2" in shown, "linked against Determinate's libraries"


def test_the_plugins_settings_go_to_nix_conf(nix):
    r = evaluate(nix, ["""{ programs.nix-hf = {
        enable = true; endpoint = "https://hf-mirror.example.org"; connections = 16; stallTimeout = 60;
        retries = 9; retryTime = 600; tokenFile = "/run/secrets/hf-token"; resumableCopy = "always"; }; }"""],
                 """{ settings = removeAttrs config.nix.settings [ "plugin-files" ]; inherit failed;
                      tokenHasContext = builtins.hasContext config.nix.settings.hf-token-file; }""")
    assert r["failed"] == [] and not r["tokenHasContext"]
    assert r["settings"] == {"hf-endpoint": "https://hf-mirror.example.org", "hf-connections": 16,
                             "hf-stall-timeout": 60, "hf-retries": 9, "hf-retry-time": 600,
                             "hf-token-file": "/run/secrets/hf-token", "hf-resumable-copy": "always"}


def test_disabled_it_changes_nothing(nix):
    assert evaluate(nix, [], "{ inherit (config.nix) settings; inherit failed; }") == {"settings": {}, "failed": []}


@pytest.mark.parametrize("package,shown", [
    ("pkgs.lix", "lix 2.93.3"),
    ("pkgs.determinate-nix-old", "determinate-nix 3.9.1"),
    ("pkgs.nixVersions.nix_2_33", "nix 2.33.6"),
    ("null", "not set"),  # home-manager without nix.package
])
def test_a_nix_without_a_build_is_an_assertion_not_a_broken_system(nix, package, shown):
    r = evaluate(nix, [f"{{ pkgs, ... }}: {{ programs.nix-hf.enable = true; nix.package = {package}; }}"],
                 "{ inherit failed; inherit (config.nix) settings; }")
    assert r["settings"] == {}, "plugin-files was set for a Nix without a build"
    assert len(r["failed"]) == 1
    message = r["failed"][0]
    assert f"nix.package is {shown}, for which nix-hf has no build" in message
    assert "nix.package = pkgs.nixVersions.nix_2_35" in message


def test_a_token_file_in_the_store_is_refused(nix):
    r = evaluate(nix, ['{ programs.nix-hf = { enable = true; tokenFile = "/nix/store/abc-token"; }; }'], "failed")
    assert len(r) == 1 and "is in the Nix store" in r[0]
    p = nix.fails("eval", "--impure", "--expr", modules_expr(
        "stub-nixos.nix", [MODULE, '{ programs.nix-hf = { enable = true; tokenFile = "relative/token"; }; }'],
        "config.nix.settings"))
    assert "programs.nix-hf.tokenFile" in p.stderr and "is not of type" in p.stderr


def test_the_real_nix_takes_the_modules_settings(nix, tmp_path):
    """nix.conf as the module writes it, with the plugin built here in place
    of the stand-in package: Nix knows every setting (NixOS's and
    home-manager's checks of nix.conf fail on a warning)."""
    settings = evaluate(nix, ["""{ programs.nix-hf = { enable = true; endpoint = "https://hf-mirror.example.org";
        connections = 16; stallTimeout = 60; retries = 9; retryTime = 600; tokenFile = "/run/secrets/hf-token";
        resumableCopy = "never"; }; }"""],
                        "config.nix.settings")
    settings["plugin-files"] = [PLUGIN]
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "nix.conf").write_text("".join(
        f"{k} = {' '.join(map(str, v)) if isinstance(v, list) else v}\n" for k, v in settings.items()))
    p = nix.run("config", "show", "--no-net", "--option", "experimental-features", "nix-command",
                env={"NIX_CONF_DIR": str(conf)})
    assert p.stderr == "", p.stderr
    shown = dict(line.split(" = ", 1) for line in p.stdout.splitlines() if " = " in line)
    for k, v in settings.items():
        if k != "plugin-files":
            assert shown[k] == str(v), k


@pytest.fixture(scope="module")
def flake(tmp_path_factory):
    """nix-hf's flake as a path flake, and a stand-in nixpkgs flake."""
    root = tmp_path_factory.mktemp("flake")
    return copy_checkout(root / "nix-hf"), stub_nixpkgs(str(root / "nixpkgs"))


def flake_outputs(shown):
    """`nix flake show --json` as {output: {system or name: names}}, from
    upstream's form or Determinate Nix's inventory."""
    if "inventory" not in shown:
        return shown
    out = {}
    for name, entry in shown["inventory"].items():
        children = entry.get("output", {}).get("children")
        out[name] = {k: v.get("children", v) for k, v in children.items()} if children else entry
    return out


def test_flake_show_lists_every_output(nix, flake):
    src, override = flake
    shown = flake_outputs(json.loads(nix.run("flake", "show", "--json", "--all-systems", *override, cwd=src).stdout))
    for system in SYSTEMS:
        assert set(shown["packages"][system]) == {"default", "cli", "nix_2_34", "nix_2_35"}
        assert set(shown["devShells"][system]) == {"default"}
        assert set(shown["checks"][system]) == {"plugin"} | ({"nixos"} if system.endswith("linux") else set())
    assert "default" in shown["nixosModules"] and "default" in shown["overlays"]
    # Outputs nix does not know of are listed without their contents.
    assert "darwinModules" in shown and "homeManagerModules" in shown


def test_flake_check_evaluates_everything(nix, flake):
    src, override = flake
    p = nix.run("flake", "check", "--no-build", "--all-systems", *override, cwd=src)
    assert "error:" not in p.stderr, p.stderr
    # The VM test's machine, evaluated by the stand-in's runNixOSTest: the
    # module loads a plugin built for the machine's Nix.
    machine = json.loads(json.loads(nix.run("eval", "--json", ".#checks.x86_64-linux.nixos.nixSettings", *override,
                                            cwd=src).stdout))
    assert machine["plugin-files"][0].endswith("/lib/nix/plugins/libnix-hf.so")
    assert machine["experimental-features"] == ["nix-command", "flakes"]


def test_the_packages_instantiate_against_each_nix(nix, flake):
    src, override = flake
    drv = lambda attr: nix.run("eval", "--raw", f".#{attr}", *override, cwd=src).stdout
    a, b, default = (drv(f"packages.x86_64-linux.{p}.drvPath") for p in ["nix_2_34", "nix_2_35", "default"])
    assert len({a, b, default}) == 3 and all(d.endswith(".drv") for d in (a, b, default))
    builds = nix.run("eval", "--json", ".#packages.x86_64-linux.default.builds", "--apply",
                     "map (b: b.nixVersion)", *override, cwd=src).stdout
    assert json.loads(builds) == ["2.34.8", "2.35.2"], "the default serves every supported Nix"
    inputs = nix.run("derivation", "show", ".#packages.x86_64-linux.nix_2_35", *override, cwd=src).stdout
    assert "nix-store-2.35.2" in inputs and "nix-flake-2.35.2" not in inputs, "links exactly that Nix's libraries"
    assert "cargo-vendor" in inputs, "crates vendored from Cargo.lock"


def test_the_overlay_adds_nix_hf(nix, flake):
    src, override = flake
    out = nix.run("eval", "--json", ".#overlays.default", "--apply",
                  f"""overlay: let lib = import {LIB}/lib; pkgs = {STUB_PKGS};
                        final = pkgs // overlay final pkgs; in map (b: b.nixVersion) final.nix-hf.builds""",
                  "--impure", *override, cwd=src)
    assert json.loads(out.stdout) == ["2.34.8", "2.35.2"]
    # And fetchHuggingFace for nixpkgs users, running the program alone
    # (without the plugin: this nix's plugin is not loaded here).
    out = nix.run("eval", "--json", ".#overlays.default", "--apply",
                  f"""overlay: let lib = import {LIB}/lib; pkgs = {STUB_PKGS};
                        final = pkgs // overlay final pkgs;
                        drv = final.fetchHuggingFace {{ repo = "org/name"; rev = "{"0" * 40}";
                                                        narHash = "sha256-{"A" * 43}="; }};
                      in {{ inherit (drv) builder system; cert = drv.NIX_SSL_CERT_FILE; cli = final.nix-hf-cli.pname; }}""",
                  "--impure", "--option", "plugin-files", "", *override, cwd=src)
    drv = json.loads(out.stdout)
    assert drv["builder"].endswith("-nix-hf-cli-0.1.0/bin/nix-hf") and drv["system"] == "x86_64-linux", drv
    assert drv["cert"].endswith("-cacert/etc/ssl/certs/ca-bundle.crt") and drv["cli"] == "nix-hf-cli"
