"""Many regular files in one git pack (the Hub's smart HTTP endpoint) rather
than a request each, and the fallback when the endpoint cannot be used: the
same store path either way, every blob checked against the listing's git
hash, the token under the same rules, and bounded faults. The stand-in's
repos are real git repositories; the first test proves them with git."""

import json
import os
import subprocess

import pytest

from harness import Nix, files_of, tree_of
from standin.fixtures import ALICE_TOKEN
from standin.git import blob_data

MANY = '"hf:nixhf/many-files"'


def fetch(nix, url=MANY, *extra, **kw):
    expr = f"let t = builtins.fetchTree {url}; in {{ inherit (t) narHash rev; path = t.outPath; }}"
    return nix.run("eval", "--json", "--impure", "--expr", expr, "-v", *extra, **kw)


def git_requests(hub):
    return [q for q in hub.requests() if q["path"].endswith(("/info/refs?service=git-upload-pack", "/git-upload-pack"))]


def per_file_requests(hub):
    return [q for q in hub.requests() if "/resolve" in q["path"]]


@pytest.mark.parametrize("kind,repo", [("model", "nixhf/tiny"), ("dataset", "nixhf/tiny-data"),
                                       ("model", "nixhf/many-files"), ("space", "nixhf/tiny-space")])
def test_git_clones_each_repo_as_the_hub_lists_it(hub, expected, tmp_path, kind, repo):
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[kind]
    out = tmp_path / "clone"
    env = dict(os.environ, GIT_LFS_SKIP_SMUDGE="1", GIT_TERMINAL_PROMPT="0")
    subprocess.run(["git", "clone", "-q", f"{hub.url}/{prefix}{repo}", str(out)], check=True, env=env)
    r = expected[(kind, repo)]
    c = r.resolve("main")
    head = subprocess.run(["git", "-C", str(out), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert head == c.sha, "the commit git has is not the one the API reports"
    listed = subprocess.run(["git", "-C", str(out), "ls-tree", "-r", "-z", "HEAD"], capture_output=True,
                            text=True).stdout
    oids = {line.split("\t")[1]: line.split()[2] for line in listed.split("\0") if line}
    assert oids == {p: e.listing()["oid"] for p, e in c.files.items()}, "git's blobs are not the listing's"
    got = {p: b for p, b in tree_of(out).items() if not p.startswith(".git/")}
    assert got == {p: blob_data(e) for p, e in c.files.items()}, "LFS files are not their pointers"
    subprocess.run(["git", "-C", str(out), "fsck", "--strict"], check=True, capture_output=True)


def test_many_regular_files_come_in_one_pack_with_the_store_path_of_one_request_each(nix, hub, expected, tmp_path):
    p = fetch(nix)
    packed = json.loads(p.stdout)
    assert "fetching the 1500 regular files of 'hf:nixhf/many-files" in p.stderr and "in one git pack" in p.stderr
    assert len(git_requests(hub)) == 2 and per_file_requests(hub) == [], "not one pack"
    assert tree_of(nix.real_path(packed["path"])) == files_of(expected[("model", "nixhf/many-files")])
    assert not any(".git" in d for d, _, _ in os.walk(nix.real_path(packed["path"])))
    # The endpoint gone: a request per file, the same snapshot.
    hub.settings(git=False)
    hub.clear_log()
    other = Nix(str(tmp_path / "other"), hub.url)
    p = fetch(other)
    assert json.loads(p.stdout) == packed
    assert "regular files of 'hf:nixhf/many-files" in p.stderr and "one request each" in p.stderr
    assert len(per_file_requests(hub)) >= 1500


def test_each_regular_file_is_one_request_without_git(nix, hub, expected):
    hub.settings(git=False)
    fetch(nix)
    resolve = [q for q in per_file_requests(hub) if q["server"] == "hub"]
    assert len(resolve) <= 1500 + 8, f"{len(resolve)} requests for 1500 files: more than one each"


def test_a_corrupt_blob_in_the_pack_is_refused_naming_the_file(nix, hub):
    hub.faults({"kind": "git_corrupt", "where": "git", "match": "*git-upload-pack", "file": "shards/03/file-00010.txt"})
    p = fetch(nix, check=False)
    assert p.returncode != 0
    assert "holds no blob of 'shards/03/file-00010.txt' with the git hash the Hub lists" in p.stderr, p.stderr
    assert not [n for n in os.listdir(nix.real_path("/nix/store")) if n.endswith("-source")], "a store path was made"


def test_a_pack_cut_off_every_time_ends_in_the_fallback_within_the_retry_bound(nix, hub, expected):
    hub.faults({"kind": "drop", "where": "git", "match": "*git-upload-pack", "after": 300})
    p = fetch(nix, MANY, "--option", "hf-retries", "3")
    assert len([q for q in git_requests(hub) if q["path"].endswith("/git-upload-pack")]) == 3
    assert "one request each: " in p.stderr and "git pack" in p.stderr, p.stderr
    got = json.loads(p.stdout)
    assert tree_of(nix.real_path(got["path"])) == files_of(expected[("model", "nixhf/many-files")])


def test_a_private_repo_over_git_with_and_without_the_token(nix, hub):
    files = {f"notes/{i:03d}.txt": f"private note {i}\n" for i in range(30)}
    hub.commit("nixhf/private", files, branch="notes")
    url = '"hf:nixhf/private/notes"'
    p = fetch(nix, url, env={"HF_TOKEN": ALICE_TOKEN})
    assert "in one git pack" in p.stderr, p.stderr
    sent = git_requests(hub)
    assert len(sent) == 2 and all(q["auth"] for q in sent)
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == {k: v.encode() for k, v in files.items()}
    hub.clear_log()
    p = fetch(Nix(nix.root + "-anonymous", hub.url), url, check=False)
    assert p.returncode != 0
    assert "model repo 'nixhf/private' was not found" in p.stderr and "no token was sent" in p.stderr, p.stderr
    assert all(not q["auth"] for q in hub.requests())


def test_a_learned_location_that_fails_sends_the_rest_through_resolve(nix, hub, expected):
    hub.settings(git=False)
    # The file's own location answers 404 once; /resolve still knows it.
    hub.faults({"kind": "status", "where": "resolve", "match": "shards/00/file-00700.txt", "status": 404,
                "count": 1})
    got = json.loads(fetch(nix).stdout)
    assert tree_of(nix.real_path(got["path"])) == files_of(expected[("model", "nixhf/many-files")])
    heads = [q for q in hub.requests() if q["method"] == "HEAD" and "/resolve/" in q["path"]]
    assert len(heads) > 500, f"only {len(heads)} files located through /resolve after the location failed"
    assert any(q["path"].endswith("/resolve/" + got["rev"] + "/shards/00/file-00700.txt") for q in heads)
