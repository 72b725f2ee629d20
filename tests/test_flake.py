"""hf: flake inputs with the real nix: lock, update, override, metadata,
prefetch, and locked inputs that never touch the network again."""

import json
import subprocess
import os
import shutil

FLAKE = """{
  inputs.model = { url = "%s"; flake = false; };
  outputs = { self, model }: {
    files = builtins.attrNames (builtins.readDir model);
    readme = builtins.readFile "${model}/README.md";
  };
}
"""


def make_flake(tmp_path, url, text=FLAKE):
    d = tmp_path / "flake"
    d.mkdir(exist_ok=True)
    (d / "flake.nix").write_text(text % url)
    return str(d)


def lock_of(d):
    return json.load(open(os.path.join(d, "flake.lock")))["nodes"]["model"]


def test_lock_pins_rev_lastModified_and_narHash(nix, tmp_path, expected):
    d = make_flake(tmp_path, "hf:nixhf/tiny")
    nix.run("flake", "lock", cwd=d)
    node = lock_of(d)
    c = expected[("model", "nixhf/tiny")].resolve("main")
    assert node["original"] == {"type": "hf", "repo": "nixhf/tiny"}
    locked = node["locked"]
    assert locked["rev"] == c.sha and locked["lastModified"] == int(c.date.timestamp())
    assert locked["narHash"].startswith("sha256-") and "ref" not in locked
    assert set(locked) <= {"type", "repo", "kind", "rev", "lastModified", "narHash", "include", "exclude", "files"}
    assert nix.attr(".#readme", d) == c.files["README.md"].blob.read_all().decode()


def test_filters_and_refs_round_trip_through_the_lock_file(nix, tmp_path):
    d = make_flake(tmp_path, "hf:datasets/nixhf/tiny-data/refs/convert/parquet?include=default/train/*,README.md")
    nix.run("flake", "lock", cwd=d)
    node = lock_of(d)
    assert node["original"]["ref"] == "refs/convert/parquet" and node["original"]["kind"] == "dataset"
    assert node["locked"]["include"] == "README.md,default/train/*"
    files = nix.attr(".#files", d)
    assert files == ["default"]
    # The lock file is accepted back as it was written.
    before = open(os.path.join(d, "flake.lock")).read()
    nix.run("flake", "lock", cwd=d)
    assert open(os.path.join(d, "flake.lock")).read() == before


def test_locked_input_needs_no_network(nix, tmp_path, hub):
    d = make_flake(tmp_path, "hf:nixhf/tiny")
    nix.run("flake", "lock", cwd=d)
    nix.attr(".#files", d)
    hub.clear_log()
    shutil.rmtree(nix.env["XDG_CACHE_HOME"], ignore_errors=True)  # no fetcher cache either
    assert "config.json" in nix.attr(".#files", d)
    assert hub.requests() == [], "a locked input asked the Hub"


def test_update_moves_to_the_new_commit(nix, tmp_path, hub):
    d = make_flake(tmp_path, "hf:nixhf/moving")
    nix.run("flake", "lock", cwd=d)
    old = lock_of(d)["locked"]
    new = hub.commit("nixhf/moving", {"README.md": "# moving, changed\n"})
    # Within tarball-ttl the cached ref answer stands, as for github: inputs.
    nix.run("flake", "update", "model", "--option", "tarball-ttl", "0", cwd=d)
    cur = lock_of(d)["locked"]
    assert cur["rev"] == new["sha"] != old["rev"] and cur["narHash"] != old["narHash"]
    assert nix.attr(".#readme", d) == "# moving, changed\n"


def test_pinning_a_commit_in_the_url(nix, tmp_path, expected):
    first = expected[("model", "nixhf/tiny")].resolve("v1.0").sha
    d = make_flake(tmp_path, f"hf:nixhf/tiny/{first}")
    nix.run("flake", "lock", cwd=d)
    assert lock_of(d)["locked"]["rev"] == first and lock_of(d)["original"]["rev"] == first
    assert "second commit" not in nix.attr(".#readme", d)


def test_metadata_shows_an_hf_url(nix, tmp_path):
    d = make_flake(tmp_path, "hf:nixhf/tiny/refs/pr/1")
    nix.run("flake", "lock", cwd=d)
    meta = json.loads(nix.run("flake", "metadata", "--json", cwd=d).stdout)
    model = meta["locks"]["nodes"]["model"]
    assert model["original"]["ref"] == "refs/pr/1"
    text = nix.run("flake", "metadata", cwd=d).stdout
    assert "hf:nixhf/tiny/" in text, text


def test_prefetch_prints_store_path_and_hash(nix, expected):
    out = json.loads(nix.run("flake", "prefetch", "--json", "hf:nixhf/tiny").stdout)
    assert out["storePath"].endswith("-source") and out["hash"].startswith("sha256-")
    assert out["locked"]["rev"] == expected[("model", "nixhf/tiny")].resolve("main").sha
    human = nix.run("flake", "prefetch", "hf:nixhf/tiny").stderr
    assert out["storePath"] in human and out["hash"] in human



def test_override_input_with_an_hf_url_is_not_understood(nix, tmp_path, expected):
    # Nix parses --override-input's flake reference while it reads the
    # command line, before it loads plugins: an hf: URL is unknown then.
    first = expected[("model", "nixhf/tiny")].resolve("v1.0").sha
    d = make_flake(tmp_path, "hf:nixhf/tiny")
    p = nix.fails("flake", "lock", "--override-input", "model", f"hf:nixhf/tiny/{first}", cwd=d)
    assert f"input 'hf:nixhf/tiny/{first}' is unsupported" in p.stderr


def test_override_input_through_a_registry_alias(nix, tmp_path, expected):
    """What works instead: `flake:ALIAS[/REF-OR-REV]`, which Nix parses
    without plugins and resolves after they load. For a non-flake input Nix
    consults only the global registry (the flake-registry setting) and the
    command line's, so the alias goes into a registry file named there."""
    first = expected[("model", "nixhf/tiny")].resolve("v1.0").sha
    d = make_flake(tmp_path, "hf:nixhf/tiny")
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"version": 2, "flakes": [
        {"from": {"type": "indirect", "id": "hf-tiny"}, "to": {"type": "hf", "repo": "nixhf/tiny"}}]}))
    use = ["--option", "flake-registry", str(registry)]
    nix.run("flake", "lock", *use, "--override-input", "model", f"flake:hf-tiny/{first}", cwd=d)
    locked = lock_of(d)["locked"]
    assert locked["type"] == "hf" and locked["rev"] == first and "second commit" not in nix.attr(".#readme", d)
    # For one evaluation, without touching flake.lock: the alias alone is
    # the default branch.
    readme = nix.run("eval", "--raw", ".#readme", *use, "--override-input", "model", "flake:hf-tiny", cwd=d).stdout
    assert "second commit" in readme
    assert lock_of(d)["locked"]["rev"] == first


def test_forgetting_flake_false_is_explained(nix, tmp_path):
    d = make_flake(tmp_path, "hf:nixhf/tiny", '{ inputs.model.url = "%s"; outputs = { self, model }: { }; }')
    p = nix.fails("flake", "lock", cwd=d)
    assert "'hf:nixhf/tiny' is a Hugging Face Hub repository, not a flake" in p.stderr, p.stderr
    # The URL as the user wrote it, not pinned to the commit it locked to
    # (which `nix flake update` would then never move).
    assert 'inputs.NAME = { url = "hf:nixhf/tiny"; flake = false; };' in p.stderr, p.stderr
    assert "does not exist" not in p.stderr



def test_the_eval_cache_answers_without_the_input(nix, tmp_path):
    """A locked hf: input has a fingerprint, so Nix's eval cache serves the
    flake's derivations the second time without touching the snapshot. (The
    flake itself is a clean git repo, which every Nix can cache.)"""
    d = make_flake(tmp_path, "hf:nixhf/tiny", """{
  inputs.model = { url = "%s"; flake = false; };
  outputs = { self, model }: {
    pkg = derivation { name = "uses-model"; system = "x86_64-linux"; builder = "/bin/sh"; src = model; };
  };
}
""")
    nix.run("flake", "lock", cwd=d)
    git = ["git", "-C", d, "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "flake"]):
        subprocess.run(git + cmd, check=True, env=dict(os.environ, HOME=nix.home))
    first = nix.run("path-info", "--derivation", ".#pkg", cwd=d).stdout
    p = nix.run("path-info", "--derivation", ".#pkg", "-vvvv", cwd=d)
    assert p.stdout == first
    assert "using cached string attribute 'pkg.drvPath'" in p.stderr, p.stderr
    assert "«hf:" not in p.stderr, "the snapshot was accessed although the eval cache had the answer"
