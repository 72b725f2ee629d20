"""builtins.hfHubCache: a Hugging Face cache made of snapshots in pure
evaluation, read by the real libraries (huggingface_hub, transformers,
datasets) offline, with no Hub they could reach."""

import os

import pytest

from harness import Nix, offline_python as python
from standin.fixtures import MINILM_ID

MINILM = f'builtins.fetchHuggingFace "{MINILM_ID}"'
CACHE = f'''builtins.hfHubCache {{
  "{MINILM_ID}" = {MINILM};
  "datasets/nixhf/squad-mini" = builtins.fetchHuggingFace "hf:datasets/nixhf/squad-mini";
  "datasets/nixhf/tiny-data" = [
    (builtins.fetchHuggingFace "hf:datasets/nixhf/tiny-data")
    {{ snapshot = builtins.fetchHuggingFace "hf:datasets/nixhf/tiny-data/refs/convert/parquet";
       refs = [ "refs/convert/parquet" ]; }}
  ];
}}'''


def rev_of(nix, expr):
    return nix.eval(f"({expr}).rev")


def test_the_cache_is_laid_out_as_the_client_expects_and_links_its_snapshots(nix, expected):
    cache = nix.eval(CACHE)
    real = nix.real_path(cache)
    minilm, squad = rev_of(nix, MINILM), rev_of(nix, 'builtins.fetchHuggingFace "hf:datasets/nixhf/squad-mini"')
    parquet = rev_of(nix, 'builtins.fetchHuggingFace "hf:datasets/nixhf/tiny-data/refs/convert/parquet"')
    folder = f"{real}/models--sentence-transformers--all-MiniLM-L6-v2"
    assert open(f"{folder}/refs/main").read() == minilm
    assert os.readlink(f"{folder}/snapshots/{minilm}") == nix.eval(f"toString ({MINILM}).outPath")
    assert open(f"{real}/datasets--nixhf--squad-mini/refs/main").read() == squad
    assert open(f"{real}/datasets--nixhf--tiny-data/refs/refs/convert/parquet").read() == parquet
    assert sorted(os.listdir(real)) == ["datasets--nixhf--squad-mini", "datasets--nixhf--tiny-data",
                                        "models--sentence-transformers--all-MiniLM-L6-v2"]
    # The snapshots are references of the cache: in its closure, and kept.
    refs = nix.run("path-info", "--json", "--json-format", "1", cache).stdout
    snapshot = nix.eval(f"toString ({MINILM}).outPath")
    assert snapshot in refs
    p = nix.fails("store", "delete", snapshot)
    assert "still alive" in p.stderr or "referrers" in p.stderr or "Cannot delete" in p.stderr, p.stderr


def test_the_same_snapshots_give_the_same_cache_everywhere_and_it_copies_whole(nix, tmp_path, standin):
    cache = nix.eval(CACHE)
    other = Nix(str(tmp_path / "other-machine"), standin.url)
    assert other.eval(CACHE) == cache
    target = tmp_path / "copied"
    nix.run("copy", "--no-check-sigs", "--to", f"local?root={target}", cache)
    snapshot = nix.eval(f"toString ({MINILM}).outPath")
    assert os.path.exists(str(target) + snapshot + "/model.safetensors"), "nix copy left a snapshot behind"


def test_pure_evaluation_needs_nothing_but_pinned_snapshots(nix):
    info = nix.eval(f"let r = {MINILM}; in {{ inherit (r) rev narHash; }}")
    pinned = (f'builtins.hfHubCache {{ "{MINILM_ID}" = builtins.fetchHuggingFace {{ repo = "{MINILM_ID}"; '
              f'rev = "{info["rev"]}"; narHash = "{info["narHash"]}"; }}; }}')
    assert nix.eval(pinned, impure=False) == nix.eval(f'builtins.hfHubCache {{ "{MINILM_ID}" = {MINILM}; }}')


def test_huggingface_hub_reads_it_offline(nix, tmp_path, at_nix_store):
    cache = nix.eval(CACHE)
    rev = rev_of(nix, MINILM)
    r = python(f"""
import json, subprocess, sys, huggingface_hub as hh
a = hh.hf_hub_download("{MINILM_ID}", "config.json")
b = hh.snapshot_download("{MINILM_ID}")
c = hh.try_to_load_from_cache("{MINILM_ID}", "tokenizer.json")
info = hh.scan_cache_dir()
repos = sorted((r.repo_type, r.repo_id, sorted(x for rev in r.revisions for x in rev.refs)) for r in info.repos)
ls = subprocess.run([sys.executable.replace("python", "hf"), "cache", "ls"], capture_output=True, text=True)
print(json.dumps(dict(a=a, b=b, c=c, repos=repos, warnings=[str(w) for w in info.warnings], ls=ls.stdout,
                      lsrc=ls.returncode)))
""", cache, tmp_path)
    snap = f"{cache}/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/{rev}"
    assert (r["a"], r["b"], r["c"]) == (f"{snap}/config.json", snap, f"{snap}/tokenizer.json")
    assert r["warnings"] == [], "the official client finds the cache corrupt"
    assert r["repos"] == [["dataset", "nixhf/squad-mini", ["main"]],
                          ["dataset", "nixhf/tiny-data", ["main", "refs/convert/parquet"]],
                          ["model", MINILM_ID, ["main"]]]
    # The `hf cache ls` listing (it shortens long ids).
    assert r["lsrc"] == 0 and "Found 3 repo(s) for a total of 4 revision(s)" in r["ls"], r["ls"]
    assert "model/sentence-tr" in r["ls"] and "dataset/nixhf/tin" in r["ls"], r["ls"]


def test_transformers_loads_the_real_minilm_offline(nix, tmp_path, at_nix_store):
    cache = nix.eval(CACHE)
    r = python(f"""
import json
from transformers import AutoConfig, AutoTokenizer
config = AutoConfig.from_pretrained("{MINILM_ID}")
tok = AutoTokenizer.from_pretrained("{MINILM_ID}")
ids = tok("Nix pins models")["input_ids"]
print(json.dumps(dict(hidden=config.hidden_size, model_type=config.model_type, ids=ids,
                      back=tok.decode(ids, skip_special_tokens=True))))
""", cache, tmp_path)
    assert r["hidden"] == 384 and r["model_type"] == "bert"
    assert r["back"] == "nix pins models" and r["ids"][0] == 101 and r["ids"][-1] == 102


def test_datasets_loads_parquet_snapshots_offline(nix, tmp_path, at_nix_store):
    # datasets 5 will not look a Hub dataset up by name while offline unless
    # it prepared it before (in its own cache); the snapshot folder, which
    # the official client finds in the cache offline, is what it loads.
    cache = nix.eval(CACHE)
    r = python("""
import json
from datasets import load_dataset
from huggingface_hub import snapshot_download
squad = load_dataset(snapshot_download("nixhf/squad-mini", repo_type="dataset"))
parquet = load_dataset(snapshot_download("nixhf/tiny-data", repo_type="dataset", revision="refs/convert/parquet"))
print(json.dumps(dict(splits=sorted(squad), train=len(squad["train"]), first=squad["test"][0],
                      parquet=sorted(parquet), rows=parquet["train"].to_list())))
""", cache, tmp_path)
    assert r["splits"] == ["test", "train"] and r["train"] == 20
    assert r["first"] == {"question": "What is 7 times 6?", "answer": "42"}
    assert r["parquet"] == ["test", "train"] and r["rows"] == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def test_a_filtered_snapshot_serves_what_it_has_and_the_library_says_what_it_lacks(nix, tmp_path, at_nix_store):
    some = f'builtins.fetchHuggingFace {{ repo = "{MINILM_ID}"; include = [ "config.json" "tokenizer*" ]; }}'
    cache = nix.eval(f'builtins.hfHubCache {{ "{MINILM_ID}" = {some}; }}')
    r = python(f"""
import json, huggingface_hub as hh
from transformers import AutoTokenizer
have = hh.hf_hub_download("{MINILM_ID}", "config.json")
tok = AutoTokenizer.from_pretrained("{MINILM_ID}")
try:
    hh.hf_hub_download("{MINILM_ID}", "model.safetensors")
    lack = None
except Exception as e:
    lack = [type(e).__name__, str(e)]
print(json.dumps(dict(have=have, tok=type(tok).__name__, lack=lack)))
""", cache, tmp_path)
    assert r["have"].endswith("/config.json") and "Tokenizer" in r["tok"]
    assert r["lack"][0] == "LocalEntryNotFoundError", r["lack"]
    assert "offline" in r["lack"][1].lower() or "cache" in r["lack"][1].lower(), r["lack"]


@pytest.mark.parametrize("arg,message", [
    ('{ "org/name/main" = builtins.fetchHuggingFace "nixhf/tiny"; }', "'org/name/main' is not a repo id"),
    ('{ "nixhf/tiny" = { snapshot = (builtins.fetchHuggingFace "nixhf/tiny").outPath; }; }', "has no 'rev'"),
    ('{ "nixhf/tiny" = [ (builtins.fetchHuggingFace "nixhf/tiny") (builtins.fetchHuggingFace "nixhf/tiny/v1.0") ]; }',
     "ref 'main' would point at both"),
    ('{ "nixhf/tiny" = derivation { name = "x"; system = "x86_64-linux"; builder = "/bin/sh"; } // { rev = "0000000000000000000000000000000000000000"; }; }',
     "is built by a derivation"),
])
def test_mistakes_are_named(nix, arg, message):
    p = nix.fails("eval", "--impure", "--expr", f"builtins.hfHubCache {arg}")
    assert message in p.stderr, p.stderr


def test_it_is_documented(nix):
    p = nix.run("repl", input=":doc builtins.hfHubCache\n")
    assert "Make a Hugging Face cache" in p.stdout + p.stderr


def test_with_lazy_trees_the_cache_links_real_snapshots_and_hashes_are_checked(nix):
    """Determinate Nix's lazy trees (`lazy-trees = true`, which other Nix
    releases do not have and ignore) hand out a virtual store path for a
    mounted input until something needs the real one: the cache links the
    real snapshot, and a given narHash is still checked."""
    lazy = ["--option", "lazy-trees", "true"]
    tiny = 'builtins.fetchTree "hf:nixhf/tiny"'
    cache = nix.eval(f'builtins.hfHubCache {{ "nixhf/tiny" = {tiny}; }}', *lazy)
    rev = nix.eval(f"({tiny}).rev", *lazy)
    link = os.readlink(f"{nix.real_path(cache)}/models--nixhf--tiny/snapshots/{rev}")
    assert os.path.isfile(nix.real_path(link) + "/README.md"), f"the cache links {link}, which is not in the store"
    assert link == nix.eval(f"toString ({tiny}).outPath"), "not the snapshot's store path"
    narHash = nix.eval(f"({tiny}).narHash", *lazy)
    pinned = f'builtins.fetchHuggingFace {{ repo = "nixhf/tiny"; narHash = "{narHash}"; }}'
    assert nix.eval(f"({pinned}).narHash", *lazy) == narHash
    wrong = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    p = nix.fails("eval", "--impure", *lazy, "--expr",
                  f'(builtins.fetchHuggingFace {{ repo = "nixhf/tiny"; narHash = "{wrong}"; }}).outPath')
    assert p.returncode == 102 and f"specified: {wrong}" in p.stderr, p.stderr
