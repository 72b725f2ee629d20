"""Fetching snapshots with the plugin in the real nix: fetchTree,
builtins.fetchHuggingFace, and the three ref kinds, filters, pagination,
names, pure mode and hash checks."""

import json
import os

import pytest

from harness import Nix, files_of, tree_of


def fetch_tree(nix, arg, impure=True):
    """fetchTree's attributes, and the tree it produced."""
    attrs = nix.eval(f"let r = builtins.fetchTree {arg}; in removeAttrs r [ \"outPath\" ] // {{ path = toString r.outPath; }}",
                     impure=impure)
    return attrs, tree_of(nix.real_path(attrs["path"]))


def commit(expected, repo, rev="main", kind="model"):
    return expected[(kind, repo)].resolve(rev)


def test_fetchtree_attrset_gives_the_usual_attributes(nix, expected):
    attrs, tree = fetch_tree(nix, '{ type = "hf"; repo = "nixhf/tiny"; }')
    c = commit(expected, "nixhf/tiny")
    assert tree == files_of(expected[("model", "nixhf/tiny")])
    assert "unicodé/naïve-Ω.txt" in tree and "with space/file name.txt" in tree and tree["empty.txt"] == b""
    assert attrs["rev"] == c.sha and attrs["shortRev"] == c.sha[:7]
    assert attrs["lastModified"] == int(c.date.timestamp())
    assert attrs["lastModifiedDate"] == c.date.strftime("%Y%m%d%H%M%S")
    assert attrs["narHash"].startswith("sha256-")
    assert attrs["path"].endswith("-source")


@pytest.mark.parametrize("url,repo,rev,kind", [
    ("hf:nixhf/tiny/v1.0", "nixhf/tiny", "v1.0", "model"),
    ("hf:nixhf/tiny/refs/pr/1", "nixhf/tiny", "refs/pr/1", "model"),
    ("hf:datasets/nixhf/tiny-data", "nixhf/tiny-data", "main", "dataset"),
    ("hf:datasets/nixhf/tiny-data/refs/convert/parquet", "nixhf/tiny-data", "refs/convert/parquet", "dataset"),
    ("hf:spaces/nixhf/tiny-space", "nixhf/tiny-space", "main", "space"),
    ("hf:tinylegacy", "tinylegacy", "main", "model"),
    ("hf:nixhf/tiny?ref=v1.0", "nixhf/tiny", "v1.0", "model"),
])
def test_fetchtree_url_refs_and_kinds(nix, expected, url, repo, rev, kind):
    attrs, tree = fetch_tree(nix, f'"{url}"')
    c = commit(expected, repo, rev, kind)
    assert attrs["rev"] == c.sha
    assert tree == files_of(expected[(kind, repo)], rev)


def test_full_commit_ids(nix, expected):
    first = commit(expected, "nixhf/tiny", "v1.0").sha
    for arg in [f'"hf:nixhf/tiny/{first}"', f'{{ type = "hf"; repo = "nixhf/tiny"; rev = "{first}"; }}']:
        attrs, tree = fetch_tree(nix, arg)
        assert attrs["rev"] == first and b"second commit" not in tree["README.md"]


def test_legacy_id_with_a_commit(nix, expected):
    sha = commit(expected, "tinylegacy").sha
    attrs, _ = fetch_tree(nix, f'"hf:tinylegacy?rev={sha}"')
    assert attrs["rev"] == sha


def test_more_than_1000_files_in_any_order(nix, expected, hub):
    _, tree = fetch_tree(nix, '"hf:nixhf/many-files"')
    assert tree == files_of(expected[("model", "nixhf/many-files")])
    assert any("cursor=" in q["path"] for q in hub.requests()), "expected a paginated listing"


def test_filters_select_files_and_are_part_of_the_identity(nix, expected):
    full = files_of(expected[("model", "nixhf/tiny")])
    a = nix.eval('let r = builtins.fetchHuggingFace { repo = "nixhf/tiny"; include = [ "*.json" "nested/" ]; '
                 'exclude = [ "*/leaf.txt" ]; }; in { inherit (r) narHash; path = toString r.outPath; }')
    tree = tree_of(nix.real_path(a["path"]))
    assert set(tree) == {"config.json", "nested/weights/part.bin"}
    assert all(tree[p] == full[p] for p in tree)
    b, tb = fetch_tree(nix, '"hf:nixhf/tiny?files=README.md,with%20space/file%20name.txt"')
    assert set(tb) == {"README.md", "with space/file name.txt"}
    c, _ = fetch_tree(nix, '"hf:nixhf/tiny?include=*.json"')
    assert len({a["narHash"], b["narHash"], c["narHash"]}) == 3


def test_filter_errors(nix, hub):
    p = nix.fails("eval", "--impure", "--expr", 'builtins.fetchHuggingFace { repo = "nixhf/tiny"; files = [ "nope.bin" ]; }')
    assert "file 'nope.bin' (in 'files') does not exist in 'hf:nixhf/tiny" in p.stderr
    p = nix.fails("eval", "--impure", "--expr", 'builtins.fetchHuggingFace { repo = "nixhf/tiny"; include = [ "*.gguf" ]; }')
    assert "no file of 'hf:nixhf/tiny?include=*.gguf'" in p.stderr and "fix the patterns" in p.stderr


def test_fetchHuggingFace_argument_forms_agree(nix, expected):
    sha = commit(expected, "nixhf/tiny").sha
    revs = nix.eval('map (a: (builtins.fetchHuggingFace a).rev) '
                    '[ "nixhf/tiny" "hf:nixhf/tiny" { repo = "nixhf/tiny"; } { repo = "nixhf/tiny"; kind = "model"; ref = "main"; } ]')
    assert revs == [sha] * 4
    d = nix.eval('(builtins.fetchHuggingFace { repo = "nixhf/tiny-data"; kind = "dataset"; ref = "refs/convert/parquet"; }).rev')
    assert d == commit(expected, "nixhf/tiny-data", "refs/convert/parquet", "dataset").sha


def test_fetchHuggingFace_has_documentation(nix):
    p = nix.run("repl", input=":doc builtins.fetchHuggingFace\n")
    assert "Fetch a snapshot of a Hugging Face Hub repository" in p.stdout + p.stderr


def test_pure_mode_needs_rev_and_narHash(nix, expected):
    p = nix.fails("eval", "--expr", '(builtins.fetchHuggingFace "nixhf/tiny").rev')
    assert "in pure evaluation mode, 'fetchHuggingFace' needs both 'rev' and 'narHash'" in p.stderr
    a = nix.eval('builtins.fetchHuggingFace "nixhf/tiny"')
    info = nix.eval('let r = builtins.fetchHuggingFace "nixhf/tiny"; in { inherit (r) rev narHash; }')
    expr = f'(builtins.fetchHuggingFace {{ repo = "nixhf/tiny"; rev = "{info["rev"]}"; narHash = "{info["narHash"]}"; }}).outPath'
    assert nix.eval(expr, impure=False) == a


def test_wrong_narHash_fails_with_102(nix):
    wrong = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    p = nix.fails("eval", "--impure", "--expr", f'builtins.fetchHuggingFace {{ repo = "nixhf/tiny"; narHash = "{wrong}"; }}')
    assert p.returncode == 102, p.stderr
    assert f"specified: {wrong}" in p.stderr and "got: sha256-" in p.stderr


def test_same_content_same_store_path_everywhere(nix, tmp_path, standin):
    other = Nix(str(tmp_path / "other-machine"), standin.url)
    a = nix.eval('(builtins.fetchTree "hf:nixhf/tiny").outPath')
    b = other.eval('(builtins.fetchTree "hf:nixhf/tiny").outPath')
    assert a == b


def test_malformed_inputs_fail_before_any_network_call(nix, hub):
    cases = {
        '"hf:nixhf/tiny?colour=red"': "unknown parameter 'colour'",
        '{ type = "hf"; repo = "nixhf/tiny"; rev = "abc123"; }': "not a full 40-character",
        '{ type = "hf"; repo = "nixhf/tiny"; ref = "main"; rev = "0000000000000000000000000000000000000000"; }': "both 'ref' and 'rev'",
        '{ type = "hf"; repo = "nixhf/tiny"; kind = "modle"; }': "unknown kind 'modle'",
        '{ type = "hf"; repo = "nixhf/tiny"; include = "[oops"; }': "'[oops' in 'include' is not a valid glob",
        '{ type = "hf"; }': "has no 'repo'",
        '"hf:nixhf//tiny"': "empty path segment",
    }
    for arg, message in cases.items():
        p = nix.fails("eval", "--impure", "--expr", f"builtins.fetchTree {arg}")
        assert message in p.stderr, (arg, p.stderr)
    assert hub.requests() == [], "a malformed input reached the network"


def test_endpoint_setting_overrides_HF_ENDPOINT(nix, standin):
    nix.env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/tiny").rev')
    assert "giving up on 'hf:nixhf/tiny' (resolving 'main'): cannot reach the Hugging Face Hub at http://127.0.0.1:9" \
        in p.stderr
    assert nix.eval('(builtins.fetchTree "hf:nixhf/tiny").rev', "--option", "hf-endpoint", standin.url)


def test_a_wrong_hf_resumable_copy_is_named_for_a_local_store_too(nix):
    """It changes nothing into a local store, but a typo is told wherever it
    is set: before a first fetch and once the snapshot is in the store."""
    expr = '(builtins.fetchTree "hf:nixhf/tiny").narHash'
    message = "hf-resumable-copy is 'sometimes'; set it to 'fresh' (the default), 'always' or 'never'"
    assert message in nix.fails("eval", "--impure", "--expr", expr, "--option", "hf-resumable-copy", "sometimes").stderr
    assert nix.eval(expr, "--option", "hf-resumable-copy", "never").startswith("sha256-")
    assert message in nix.fails("eval", "--impure", "--expr", expr, "--option", "hf-resumable-copy", "sometimes").stderr


def test_missing_repo_and_revision_errors_name_the_input(nix):
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/nope").rev')
    assert "model repo 'nixhf/nope' was not found" in p.stderr and "'hf:nixhf/nope'" in p.stderr
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/tiny/no-such-branch").rev')
    assert "revision 'no-such-branch' does not exist in model repo 'nixhf/tiny'" in p.stderr


def test_the_real_minilm_model_loads_from_the_store(nix, tmp_path):
    path = nix.real_path(nix.eval('(builtins.fetchTree "hf:sentence-transformers/all-MiniLM-L6-v2").outPath'))
    code = (
        "import sys, numpy\n"
        "from safetensors.numpy import load_file\n"
        "from tokenizers import Tokenizer\n"
        "w = load_file(sys.argv[1] + '/model.safetensors')\n"
        "t = Tokenizer.from_file(sys.argv[1] + '/tokenizer.json')\n"
        "ids = t.encode('Nix pins models').ids\n"
        "emb = w['embeddings.word_embeddings.weight'] if 'embeddings.word_embeddings.weight' in w else "
        "next(v for k, v in w.items() if k.endswith('word_embeddings.weight'))\n"
        "print(len(w), emb.shape[1], len(ids), float(numpy.abs(emb[ids]).sum()) > 0)\n"
    )
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    tensors, dim, n_ids, nonzero = out.stdout.split()
    assert int(tensors) > 50 and dim == "384" and int(n_ids) > 2 and nonzero == "True"


def test_ref_answers_are_cached_for_tarball_ttl(nix, hub):
    first = nix.eval('(builtins.fetchTree "hf:nixhf/moving").rev')
    new = hub.commit("nixhf/moving", {"notes.txt": "x\n"})
    hub.clear_log()
    assert nix.eval('(builtins.fetchTree "hf:nixhf/moving").rev') == first
    assert hub.requests() == [], "a cached ref whose snapshot is in the store asked the Hub"
    assert nix.eval('(builtins.fetchTree "hf:nixhf/moving").rev', "--option", "tarball-ttl", "0") == new["sha"]


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "a//b.txt", "./a.txt", "a/../../b.txt", "ctl\u0001.txt", ""])
def test_unsafe_listed_paths_are_refused(nix, hub, bad):
    hub.faults({"kind": "listing", "match": "nixhf/tiny",
                "entries": [{"type": "file", "path": bad, "size": 1, "oid": "0" * 40}]})
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/tiny").rev')
    assert "has an unsafe file path" in p.stderr and "refusing to write it" in p.stderr
    assert not any("resolve" in q["path"] for q in hub.requests()), "a file was downloaded from a hostile listing"


def test_moved_snapshots_are_registered_exactly_as_nix_would(nix, expected):
    """Snapshots are moved into the store and registered with the NAR hash the
    core computed while downloading; Nix's own check must agree."""
    for url in ["hf:nixhf/tiny", "hf:nixhf/many-files", "hf:datasets/nixhf/tiny-data/refs/convert/parquet"]:
        a = nix.eval(f'let r = builtins.fetchTree "{url}"; in {{ inherit (r) narHash; path = toString r.outPath; }}')
        nix.run("store", "verify", "--no-trust", a["path"])
        assert nix.run("hash", "path", nix.real_path(a["path"])).stdout.strip() == a["narHash"]
        assert nix.run("path-info", "--json", a["path"]).stdout.count("fixed:r:sha256") == 1
    p = nix.run("eval", "--impure", "--debug", "--expr", '(builtins.fetchTree "hf:nixhf/moving").narHash')
    assert "cannot be moved there" not in p.stderr, "the snapshot was copied, not moved, into a local store"
    partial = os.path.join(nix.env["XDG_CACHE_HOME"], "nix", "nix-hf", "partial")
    assert [n for n in os.listdir(partial) if not n.endswith(".lock")] == [], "partial data left after success"


def test_the_tree_goes_into_the_store_once(nix):
    """Nix neither copies nor hashes the snapshot again: not when fetchTree
    mounts it (2.34 copies there, 2.35 hashes) nor when a derivation uses it
    (2.35 copies a lazily mounted tree then)."""
    expr = ('let r = builtins.fetchHuggingFace "nixhf/tiny"; in (derivation { name = "x"; system = "x86_64-linux"; '
            'builder = "/bin/sh"; src = r; }).drvPath')
    p = nix.run("eval", "--impure", "-vvvv", "--expr", expr)
    lines = [l for l in p.stderr.splitlines() if "«hf:nixhf/tiny/" in l]
    assert any("cache hit in" in l for l in lines), p.stderr
    assert not [l for l in lines if "copying" in l or "hashing" in l], lines
