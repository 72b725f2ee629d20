"""The examples (examples/*), each locked against the Hub stand-in with its
nixpkgs input replaced by a stand-in (nixpkgs cannot be fetched here),
evaluated as far as that allows, and the model files they hand to their
programs loaded with the real Python readers (gguf, safetensors,
tokenizers, transformers). Running llama.cpp, llm or a NixOS VM needs
nixpkgs."""

import json
import os
import re
import shutil

import pytest

from harness import TOP, copy_checkout, offline_python, stub_nixpkgs
from standin.fixtures import GGUF_ID, GGUF_Q4 as Q4, MINILM_ID

MINILM_FOLDER = "models--sentence-transformers--all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def nixpkgs(tmp_path_factory):
    return stub_nixpkgs(str(tmp_path_factory.mktemp("nixpkgs")))


def locked(nix, tmp_path, name, overrides):
    d = tmp_path / name
    shutil.copytree(os.path.join(TOP, "examples", name), d)
    nix.run("flake", "lock", *overrides, cwd=str(d))
    return str(d)


def read_gguf(path):
    """What llama.cpp reads first: the architecture and the tensors."""
    import gguf
    r = gguf.GGUFReader(path)
    return {"arch": bytes(r.fields["general.architecture"].parts[-1]).decode(), "tensors": [t.name for t in r.tensors]}


def test_each_example_has_a_readme_with_one_command():
    for name in os.listdir(os.path.join(TOP, "examples")):
        readme = open(os.path.join(TOP, "examples", name, "README.md")).read()
        assert len(re.findall(r"```sh\n(.+?)\n```", readme, re.S)) == 1, name


def test_llama_cpp_serves_the_one_gguf_file_it_names(nix, tmp_path, nixpkgs):
    d = locked(nix, tmp_path, "llama-cpp", nixpkgs)
    lock = json.load(open(f"{d}/flake.lock"))["nodes"]["qwen"]
    assert lock["locked"]["files"] == Q4 and lock["locked"]["repo"] == GGUF_ID
    drv = json.loads(nix.run("derivation", "show", ".#packages.x86_64-linux.default", *nixpkgs, cwd=d).stdout)
    script = json.dumps(drv)
    model = re.search(r"(/nix/store/[a-z0-9]+-source/" + re.escape(Q4) + ")", script).group(1)
    assert "llama-cpp/bin/llama-server -m " + model in script
    snapshot = os.path.dirname(model)
    assert os.listdir(nix.real_path(snapshot)) == [Q4], "more than the one file was fetched"
    g = read_gguf(nix.real_path(model))
    assert g["arch"] == "qwen2" and g["tensors"] == ["token_embd.weight"]
    program = nix.run("eval", "--raw", ".#apps.x86_64-linux.default.program", *nixpkgs, cwd=d).stdout
    assert program.endswith("/bin/serve-qwen")


def test_python_transformers_loads_the_pinned_model_offline(nix, tmp_path, nixpkgs, at_nix_store):
    d = locked(nix, tmp_path, "python-transformers", nixpkgs)
    shell = json.loads(nix.run("eval", "--json", ".#devShells.x86_64-linux.default", "--apply",
                               "s: { inherit (s) HF_HUB_CACHE HF_HUB_OFFLINE; }", *nixpkgs, cwd=d).stdout)
    assert shell["HF_HUB_OFFLINE"] == "1"
    r = offline_python(f"""
import json
from transformers import AutoConfig, AutoTokenizer
tok = AutoTokenizer.from_pretrained("{MINILM_ID}")
print(json.dumps(dict(hidden=AutoConfig.from_pretrained("{MINILM_ID}").hidden_size,
                      back=tok.decode(tok("Nix pins models")["input_ids"], skip_special_tokens=True))))
""", shell["HF_HUB_CACHE"], tmp_path)
    assert r == {"hidden": 384, "back": "nix pins models"}


def test_llm_gets_the_plugin_and_a_cache_holding_the_embedding_model(nix, tmp_path, nixpkgs, at_nix_store):
    d = locked(nix, tmp_path, "llm-embeddings", nixpkgs)
    shell = json.loads(nix.run("eval", "--json", ".#devShells.x86_64-linux.default", "--apply",
                               "s: { inherit (s) HF_HUB_CACHE HF_HUB_OFFLINE; packages = map (p: p.name) s.packages; "
                               "plugins = (builtins.head s.packages).plugins; }", *nixpkgs, cwd=d).stdout)
    assert shell["plugins"] == ["llm-sentence-transformers"] and shell["HF_HUB_OFFLINE"] == "1"
    cache = shell["HF_HUB_CACHE"]
    rev = open(f"{cache}/{MINILM_FOLDER}/refs/main").read()
    r = offline_python("""
import json, sys
from safetensors.numpy import load_file
from tokenizers import Tokenizer
w = load_file(sys.argv[1] + "/model.safetensors")
t = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
print(json.dumps(dict(dim=int(w["embeddings.word_embeddings.weight"].shape[1]), n=len(t.encode("an embedding").ids))))
""", cache, tmp_path, f"{cache}/{MINILM_FOLDER}/snapshots/{rev}")
    assert r["dim"] == 384 and r["n"] > 2


def test_the_nixos_service_gets_the_pinned_model(nix, tmp_path, nixpkgs):
    checkout = copy_checkout(tmp_path / "nix-hf")
    d = locked(nix, tmp_path, "nixos-service", nixpkgs + ["--override-input", "nix-hf", f"path:{checkout}"])
    r = nix.eval(f"""
      let
        f = builtins.getFlake "path:{d}";
        lib = f.inputs.nixpkgs.lib;
        config = (lib.evalModules {{
          modules = [ {TOP}/tests/nix/stub-nixos.nix {TOP}/tests/nix/stub-nixos-services.nix
                      f.inputs.nix-hf.nixosModules.default {d}/configuration.nix ];
          specialArgs = {{ pkgs = f.inputs.nixpkgs.legacyPackages.x86_64-linux; inherit (f) inputs; }};
        }}).config;
      in {{
        model = config.services.llama-cpp.model;
        env = config.environment.variables;
        plugin = config.nix.settings.plugin-files;
        failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
      }}""")
    assert r["failed"] == [] and r["plugin"][0].endswith("/lib/nix/plugins/libnix-hf.so")
    assert r["model"].endswith("/" + Q4)
    assert read_gguf(nix.real_path(r["model"]))["arch"] == "qwen2"
    assert r["env"]["HF_HUB_OFFLINE"] == "1" and r["env"]["HF_HUB_CACHE"].endswith("-hf-hub-cache")
