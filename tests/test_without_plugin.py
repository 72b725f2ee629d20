"""nix/lib.nix in the real nix without the plugin, as Lix, Hydra or a
teammate's Nix would evaluate it: fetchHuggingFace as a fixed-output
derivation that runs the nix-hf program (from the build tree, sandbox off),
at the very store path the plugin gives the same snapshot; fromPins and
hubCache over it, read offline by the Python libraries; and, with the
plugin loaded, the builtins themselves, with no derivation at all."""

import json
import os

import pytest

from harness import ANY_NIX, Nix, copy_checkout, files_of, offline_python, program, stub_nixpkgs, tree_of
from standin.fixtures import ALICE_TOKEN, MINILM_ID

SNAPSHOTS = [
    # A model with file names that need escaping everywhere (unicode, spaces).
    ("hf:nixhf/tiny", 'repo = "nixhf/tiny";'),
    ("hf:datasets/nixhf/tiny-data/refs/convert/parquet", 'repo = "nixhf/tiny-data"; kind = "dataset";'),
    ("hf:nixhf/pieces?include=*.json,model-00002*", 'repo = "nixhf/pieces"; include = [ "*.json" "model-00002*" ];'),
]


def prefetched(nix, url):
    """What `nix flake prefetch --json` says of `url`, with the plugin."""
    return json.loads(nix.run("flake", "prefetch", "--json", url).stdout)


def nix_hash(nix, path):
    """The NAR hash the store registered for `path`."""
    info = json.loads(nix.run("path-info", "--json", "--json-format", "1", path).stdout)
    return (info[0] if isinstance(info, list) else info[path])["narHash"]


def call(attrs, info, extra=""):
    return (f'{ANY_NIX}.fetchHuggingFace {{ {attrs} rev = "{info["locked"]["rev"]}"; '
            f'narHash = "{info["hash"]}"; {extra} }}')


@pytest.mark.parametrize("url,attrs", SNAPSHOTS)
def test_the_fallback_builds_the_plugins_store_path(nix, bare, expected, url, attrs):
    info = prefetched(nix, url)
    expr = call(attrs, info, f'lastModified = {info["locked"]["lastModified"]};')
    shown = bare.eval(f"let r = {expr}; in {{ inherit (r) rev shortRev narHash lastModified lastModifiedDate; "
                      "drv = r ? drvPath; }")
    assert shown["drv"], "without the plugin it is a derivation"
    path = bare.build(expr)
    assert path == info["storePath"], "the fallback's store path is not the plugin's"
    assert tree_of(path) == tree_of(nix.real_path(info["storePath"])) != {}
    assert nix_hash(bare, path) == info["hash"]
    # The attributes the builtin gives, as far as a derivation can.
    builtin = nix.eval(f'let r = builtins.fetchHuggingFace {{ {attrs} rev = "{info["locked"]["rev"]}"; }}; in '
                       "{ inherit (r) rev shortRev narHash lastModified lastModifiedDate; }")
    assert {k: v for k, v in shown.items() if k != "drv"} == builtin


def test_a_rev_in_capitals_and_a_nix32_hash_are_returned_as_the_builtin_returns_them(nix, bare):
    info = prefetched(nix, "hf:nixhf/tiny")
    nix32 = bare.run("hash", "convert", "--hash-algo", "sha256", "--to", "nix32", info["hash"]).stdout.strip()
    given = dict(info, locked=dict(info["locked"], rev=info["locked"]["rev"].upper()), hash=f"sha256:{nix32}")
    shown = bare.eval(f"let r = {call('repo = \"nixhf/tiny\";', given)}; in {{ inherit (r) rev shortRev narHash; "
                      "path = r.outPath; }")
    rev = info["locked"]["rev"]
    assert shown == {"rev": rev, "shortRev": rev[:7], "narHash": info["hash"], "path": info["storePath"]}


def test_the_tree_is_the_stand_ins(bare, nix, expected):
    info = prefetched(nix, "hf:nixhf/tiny")
    path = bare.build(call('repo = "nixhf/tiny";', info))
    assert tree_of(path) == files_of(expected[("model", "nixhf/tiny")])


def test_a_wrong_nar_hash_is_nixs_hash_mismatch_and_leaves_no_path(nix, bare):
    right = prefetched(nix, "hf:nixhf/tiny")
    other = prefetched(nix, "hf:nixhf/tiny?include=*.json")
    wrong = dict(right, hash=other["hash"])
    p = bare.build(call('repo = "nixhf/tiny";', wrong))
    assert p.returncode != 0 and "hash mismatch in fixed-output derivation" in p.stderr, p.stderr
    assert f"specified: {other['hash']}" in p.stderr and f"got:    {right['hash']}" in p.stderr, p.stderr
    assert bare.run("path-info", other["storePath"], check=False).returncode != 0, "the wrong hash's path is valid"
    # Nix keeps what the build made under the path its real hash names: the
    # right snapshot, whole (Nix's own behaviour for any fixed-output build).
    assert nix_hash(bare, right["storePath"]) == right["hash"]


def test_refusals_come_before_any_build(bare, nix):
    for args, said in [
        ('repo = "nixhf/tiny";', "needs both 'rev' and 'narHash' in advance; run 'nix-hf prefetch hf:nixhf/tiny'"),
        ('repo = "nixhf/tiny"; rev = "x"; narHash = "y"; ref = "main";', "'ref' and 'rev' exclude each other"),
        ('repo = "nixhf/tiny"; rev = "x"; narHash = "y"; includes = [ ];', "unknown attribute 'includes'"),
    ]:
        p = bare.fails("eval", "--impure", "--expr", f"({ANY_NIX}.fetchHuggingFace {{ {args} }}).outPath")
        assert f"error: fetchHuggingFace 'nixhf/tiny' (without the nix-hf plugin): " in p.stderr and said in p.stderr, \
            p.stderr
    # A bad input the program refuses as the plugin does, in the build log.
    args = f'repo = "nixhf/tiny"; include = [ "[x" ]; rev = "{"0" * 40}"; narHash = "sha256-{"A" * 43}=";'
    plugin = nix.fails("eval", "--impure", "--expr", f"(builtins.fetchHuggingFace {{ {args} }}).outPath").stderr
    said = next(l for l in plugin.splitlines() if "is not a valid glob" in l).strip().removeprefix("error: ")
    bad = bare.build(f"{ANY_NIX}.fetchHuggingFace {{ {args} }}")
    assert f"> error: {said}" in bad.stderr, (said, bad.stderr)


def test_with_the_plugin_it_is_the_builtin_and_builds_nothing(nix, tmp_path):
    info = prefetched(nix, "hf:nixhf/tiny")
    # A program that does not exist: were a derivation built, it would fail.
    expr = call('repo = "nixhf/tiny";', info, 'program = "/nonexistent/nix-hf";')
    r = nix.eval(f"let r = {expr}; in {{ drv = r ? drvPath; path = toString r.outPath; }}")
    assert r == {"drv": False, "path": info["storePath"]}
    assert os.path.isdir(nix.real_path(info["storePath"]))


def test_a_binary_cache_filled_without_the_plugin_serves_the_plugin(nix, bare, hub, tmp_path):
    info = prefetched(nix, "hf:nixhf/tiny")
    path = bare.build(call('repo = "nixhf/tiny";', info))
    cache = tmp_path / "binary-cache"
    bare.run("copy", "--to", f"file://{cache}", path)
    other = Nix(str(tmp_path / "other"), hub.url)
    other.conf.update({"substituters": f"file://{cache}", "require-sigs": "false"})
    other.write_conf()
    hub.clear_log()
    got = other.eval(f'(builtins.fetchHuggingFace {{ repo = "nixhf/tiny"; rev = "{info["locked"]["rev"]}"; '
                     f'narHash = "{info["hash"]}"; }}).outPath', impure=False)
    assert got == path
    assert hub.requests() == [], "the plugin asked the Hub for what the binary cache had"


def test_gated_repos_take_the_token_from_the_builds_environment(nix, bare, hub):
    rev = nix.eval('(builtins.fetchTree "hf:nixhf/gated").rev', env={"HF_TOKEN": ALICE_TOKEN})
    hash_ = nix.eval('(builtins.fetchTree "hf:nixhf/gated").narHash', env={"HF_TOKEN": ALICE_TOKEN})
    expr = f'{ANY_NIX}.fetchHuggingFace {{ repo = "nixhf/gated"; rev = "{rev}"; narHash = "{hash_}"; }}'
    p = bare.build(expr)
    assert p.returncode == 1, p.stderr
    assert f"'hf:nixhf/gated/{rev}' is a gated model and no token was sent" in p.stderr
    assert "this ran as a Nix build, which sees only the variables fetchHuggingFace passes (HF_TOKEN, HF_ENDPOINT, " \
           "HF_HOME, …), from the environment of the process that builds" in p.stderr, p.stderr
    hub.clear_log()
    path = bare.build(expr, env={"HF_TOKEN": ALICE_TOKEN})
    assert os.path.exists(f"{path}/README.md")
    assert any(q["auth"] for q in hub.requests() if q["server"] == "hub")
    assert not any(q["auth"] for q in hub.requests() if q["server"] == "cdn"), "the token went to the CDN"
    hits = [os.path.join(d, n) for d, _, ns in os.walk(path) for n in ns
            if ALICE_TOKEN.encode() in open(os.path.join(d, n), "rb").read()]
    assert hits == [], "the token is in the store"


def test_pins_and_a_hub_cache_read_offline(bare, hub, tmp_path, expected):
    pins = tmp_path / "hf-pins.json"
    env = dict(bare.env)
    program("pin", "add", f"hf:{MINILM_ID}", "--file", str(pins), env=env)
    program("pin", "add", "hf:datasets/nixhf/tiny-data/refs/convert/parquet", "--name", "parquet",
            "--file", str(pins), env=env)
    written = json.loads(pins.read_text())
    assert sorted(written["pins"]) == ["all-MiniLM-L6-v2", "parquet"]
    assert written["pins"]["parquet"]["ref"] == "refs/convert/parquet"
    cache = bare.build(f"""let nixHf = {ANY_NIX}; pins = nixHf.fromPins {pins}; in nixHf.hubCache {{
      "{MINILM_ID}" = pins.all-MiniLM-L6-v2;
      "datasets/nixhf/tiny-data" = {{ snapshot = pins.parquet; refs = [ "refs/convert/parquet" ]; }};
    }}""")
    minilm = written["pins"]["all-MiniLM-L6-v2"]
    assert os.readlink(f"{cache}/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/{minilm['rev']}") \
        .endswith("-source")
    r = offline_python(f"""
import json, huggingface_hub as hh
from transformers import AutoConfig, AutoTokenizer
snap = hh.snapshot_download("{MINILM_ID}")
parquet = hh.snapshot_download("nixhf/tiny-data", repo_type="dataset", revision="refs/convert/parquet")
config = AutoConfig.from_pretrained("{MINILM_ID}")
tok = AutoTokenizer.from_pretrained("{MINILM_ID}")
ids = tok("Nix pins models")["input_ids"]
print(json.dumps(dict(snap=snap, parquet=parquet, hidden=config.hidden_size,
                      back=tok.decode(ids, skip_special_tokens=True))))
""", cache, tmp_path)
    assert r["snap"] == f"{cache}/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/{minilm['rev']}"
    assert r["hidden"] == 384 and r["back"] == "nix pins models"
    assert r["parquet"].endswith(written["pins"]["parquet"]["rev"])


def test_a_flake_written_with_it_evaluates_with_and_without_the_plugin(nix, bare, tmp_path):
    info = prefetched(nix, "hf:nixhf/tiny")
    src = copy_checkout(tmp_path / "nix-hf")
    nixpkgs = stub_nixpkgs(str(tmp_path / "nixpkgs"))[-1]
    user = tmp_path / "user"
    user.mkdir()
    (user / "flake.nix").write_text(f"""{{
  inputs.nix-hf.url = "path:{src}";
  outputs = {{ self, nix-hf }}: {{
    model = nix-hf.lib.fetchHuggingFace {{
      system = "x86_64-linux";
      repo = "nixhf/tiny";
      rev = "{info["locked"]["rev"]}";
      narHash = "{info["hash"]}";
    }};
    # Pure evaluation has no currentSystem: the cache is built where its
    # snapshots are.
    cache = nix-hf.lib.hubCache {{ "nixhf/tiny" = self.model; }};
  }};
}}
""")
    override = ("--override-input", "nix-hf/nixpkgs", nixpkgs)
    for n in (nix, bare):
        assert n.attr(".#model.outPath", str(user), *override) == info["storePath"]
    has_drv = lambda n: n.run("eval", "--json", ".#model", "--apply", "m: m ? drvPath", *override, cwd=str(user)).stdout
    assert (json.loads(has_drv(nix)), json.loads(has_drv(bare))) == (False, True)
    # Without the plugin the builder is the flake's own program.
    drv = bare.attr(".#model.drvPath", str(user), *override)
    shown = bare.run("derivation", "show", drv).stdout
    assert "nix-hf-cli" in shown and "bin/nix-hf" in shown, shown
    # hubCache: the builtin's cache with the plugin, a derivation for the
    # model's system without.
    cache = nix.attr(".#cache", str(user), *override)
    assert os.readlink(nix.real_path(f"{cache}/models--nixhf--tiny/snapshots/{info['locked']['rev']}")) \
        == info["storePath"]
    assert bare.attr(".#cache.drvPath", str(user), *override).endswith("-hf-hub-cache.drv")
    assert bare.attr(".#cache.system", str(user), *override) == "x86_64-linux"


def test_a_snapshot_fetched_by_hand_and_added_spares_the_build(nix, bare, tmp_path):
    """As the README says: `nix-hf fetch` then `nix store add --name source`
    gives the path the fixed-output build would make, which is then valid:
    the build does not run (its program here does not even exist)."""
    info = prefetched(nix, "hf:nixhf/tiny?include=*.json")
    snapshot = tmp_path / "snapshot"
    program("fetch", "hf:nixhf/tiny?include=*.json", str(snapshot), env=bare.env)
    added = bare.run("store", "add", "--name", "source", str(snapshot)).stdout.strip()
    assert added == info["storePath"]
    built = bare.build(call('repo = "nixhf/tiny"; include = [ "*.json" ];', info, 'program = "/nonexistent/nix-hf";'))
    assert built == info["storePath"]
