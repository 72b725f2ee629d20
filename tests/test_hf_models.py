"""services.hf-models (NixOS and home-manager) evaluated with nixpkgs' real
lib over stand-ins for the host options, in the real nix with nix-hf
loaded: the snapshots and the cache it yields, the environment it gives
services and sessions, the errors that say what to do, and home-manager's
links into the user's own cache, made by running its activation script."""

import json
import os
import subprocess

import pytest

from harness import TOP, modules_expr
from standin.fixtures import GGUF_ID, GGUF_Q4 as Q4, MINILM_ID


@pytest.fixture
def pins(nix):
    """rev and narHash of the two models, as `nix flake prefetch` prints them."""
    out = {}
    for name, url in [("minilm", f"hf:{MINILM_ID}"), ("qwen", f"hf:{GGUF_ID}?files={Q4}")]:
        p = json.loads(nix.run("flake", "prefetch", "--json", url).stdout)
        out[name] = {"rev": p["locked"]["rev"], "narHash": p["hash"]}
    return out


def expression(host, modules, then):
    """`then` (over `config` and `cfg`) of services.hf-models for `host`
    ("nixos" or "home-manager") with `modules` on top."""
    stub = "stub-nixos.nix" if host == "nixos" else "stub-home-manager.nix"
    return modules_expr(stub, [f'import {TOP}/nix/hf-models.nix "{host}"', *modules],
                        f"let cfg = config.services.hf-models; in {then}")


def evaluate(nix, host, modules, then):
    return nix.eval(expression(host, modules, then))


def models(pins, extra=""):
    m, q = pins["minilm"], pins["qwen"]
    return f"""{{ services.hf-models.models = {{
      minilm = {{ repo = "{MINILM_ID}"; rev = "{m['rev']}"; narHash = "{m['narHash']}"; }};
      qwen = {{ repo = "{GGUF_ID}"; files = [ "{Q4}" ]; rev = "{q['rev']}"; narHash = "{q['narHash']}"; }};
    }}; {extra} }}"""


def test_nixos_gets_pinned_snapshots_one_cache_and_the_environment(nix, pins):
    r = evaluate(nix, "nixos", [models(pins, 'services.hf-models.services = [ "llama-cpp" ];')],
                 "{ inherit (cfg) paths cache; llama = config.systemd.services.llama-cpp.environment; "
                 "global = config.environment.variables; }")
    minilm = nix.eval(f'toString (builtins.fetchHuggingFace "{MINILM_ID}").outPath')
    assert r["paths"]["minilm"] == minilm
    assert os.path.exists(nix.real_path(r["paths"]["qwen"]) + f"/{Q4}")
    assert sorted(os.listdir(nix.real_path(r["cache"]))) == [
        "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF", "models--sentence-transformers--all-MiniLM-L6-v2"]
    assert r["llama"] == {"HF_HUB_CACHE": r["cache"], "HF_HUB_OFFLINE": "1"}
    assert r["global"] == {}, "the whole system gets the environment only when asked"
    r = evaluate(nix, "nixos", [models(pins, "services.hf-models = { systemWide = true; offline = false; };")],
                 "config.environment.variables")
    assert set(r) == {"HF_HUB_CACHE"}


def test_a_flake_input_can_be_the_source(nix, pins):
    src = f'builtins.fetchHuggingFace "{MINILM_ID}"'
    r = evaluate(nix, "nixos", [f'{{ services.hf-models.models.minilm = {{ repo = "{MINILM_ID}"; source = {src}; }}; }}'],
                 "cfg.paths.minilm")
    assert r == nix.eval(f"toString ({src}).outPath")


def test_a_model_without_a_pin_says_what_to_do(nix):
    p = nix.fails("eval", "--impure", "--json", "--expr", expression(
        "nixos", [f'{{ services.hf-models.models.minilm.repo = "{MINILM_ID}"; }}'], "cfg.paths"))
    assert f"services.hf-models.models.minilm: give rev and narHash to pin {MINILM_ID}" in p.stderr
    assert f"nix flake prefetch hf:{MINILM_ID}" in p.stderr


def test_options_check_what_they_are_given(nix):
    """A short rev, or a source that is no snapshot, is refused by the option's type, naming the option."""
    p = nix.fails("eval", "--impure", "--json", "--expr", expression(
        "nixos", [f'{{ services.hf-models.models.minilm = {{ repo = "{MINILM_ID}"; rev = "abc123"; narHash = "x"; }}; }}'],
        "cfg.paths"))
    assert "services.hf-models.models.minilm.rev" in p.stderr and "is not of type" in p.stderr, p.stderr
    p = nix.fails("eval", "--impure", "--json", "--expr", expression(
        "nixos", [f'{{ services.hf-models.models.minilm = {{ repo = "{MINILM_ID}"; source = {{ outPath = "/x"; }}; }}; }}'],
        "cfg.paths"))
    assert "services.hf-models.models.minilm.source" in p.stderr and "snapshot (an attribute set with outPath and rev)" in p.stderr, p.stderr


def test_without_the_plugin_it_says_what_is_missing(nix, pins):
    nix.conf.pop("plugin-files")
    nix.write_conf()
    p = nix.fails("eval", "--impure", "--json", "--expr", expression("nixos", [models(pins)], "cfg.paths"))
    assert "services.hf-models needs nix-hf loaded into the nix that evaluates this configuration" in p.stderr


def test_home_manager_session_and_links_beside_the_users_own_downloads(nix, pins, tmp_path, at_nix_store):
    hub = tmp_path / "hub"
    own = hub / "models--sentence-transformers--all-MiniLM-L6-v2"
    own.mkdir(parents=True)
    (own / "mine").write_text("the user's own download")
    home = lambda extra: models(pins, f'services.hf-models = {{ linkIntoUserCache = true; userCache = "{hub}"; {extra} }};')
    r = evaluate(nix, "home-manager", [home("session = true;")],
                 "{ inherit (cfg) cache; session = config.home.sessionVariables; act = config.home.activation.hf-models; }")
    assert r["session"] == {"HF_HUB_CACHE": r["cache"], "HF_HUB_OFFLINE": "1"}
    assert r["act"]["after"] == ["writeBoundary"]
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", r["act"]["data"]], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (own / "mine").read_text() == "the user's own download" and not own.is_symlink(), "overwrote the user's files"
    assert "is your own; leaving it as it is" in p.stderr
    qwen = hub / "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF"
    assert os.readlink(qwen) == f"{r['cache']}/models--Qwen--Qwen2.5-0.5B-Instruct-GGUF"
    assert (qwen / "refs" / "main").read_text() == pins["qwen"]["rev"]
    # Dropping the model from the configuration removes its link, not the user's files.
    m = pins["minilm"]
    r2 = evaluate(nix, "home-manager", [f"""{{ services.hf-models.models.minilm = {{ repo = "{MINILM_ID}";
        rev = "{m['rev']}"; narHash = "{m['narHash']}"; }};
        services.hf-models = {{ linkIntoUserCache = true; userCache = "{hub}"; }}; }}"""],
                  "config.home.activation.hf-models.data")
    subprocess.run(["bash", "-euo", "pipefail", "-c", r2], check=True, capture_output=True)
    assert not os.path.lexists(qwen) and (own / "mine").exists()
