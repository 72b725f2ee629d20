"""Xet-backed files from Hugging Face's own CAS (local_cas_server, filled
by hf_xet) behind the stand-in's Hub rules: first proven with the official
client, then read by nix-hf natively: the same store path as through the
LFS bridge, tokens renewed, faults bounded, the fallback said."""

import json
import os
import subprocess
import sys

import pytest

from harness import PIECE, Nix, files_of, range_start, tree_of, xorb_bytes
from standin.fixtures import ALICE_TOKEN, XET_ID, XET_PRIVATE_ID

XET = f'"hf:{XET_ID}"'


def fetch(nix, url=XET, *extra, **kw):
    expr = f"let t = builtins.fetchTree {url}; in {{ inherit (t) narHash rev; path = t.outPath; }}"
    return nix.run("eval", "--json", "--impure", "--expr", expr, "-v", *extra, **kw)


def xet_files(expected, rev="main"):
    c = expected[("model", XET_ID)].resolve(rev)
    return {p: e for p, e in c.files.items() if e.lfs}


def requests(hub, server):
    return [q for q in hub.requests() if q["server"] == server]


def bridge_bytes(hub, expected):
    """Bytes of Xet-backed files that came through the LFS bridge (CDN)."""
    names = {p.rsplit("/", 1)[-1] for rev in ("v1", "v2", "main") for p in xet_files(expected, rev)}
    return sum(q["bytes"] for q in requests(hub, "cdn") if q["path"].split("?")[0].rsplit("/", 1)[-1] in names)


def stored(nix):
    return [n for n in os.listdir(nix.real_path("/nix/store")) if n.endswith("-source")]


def test_the_official_client_downloads_every_xet_file_through_the_cas(hub, expected, tmp_path):
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_DISABLE_SHARED_BLOBS="1", HF_XET_TELEMETRY_ENABLED="false")
    env.pop("HF_HUB_DISABLE_XET", None)
    for rev in ("v1", "v2", "main"):
        c = expected[("model", XET_ID)].resolve(rev)
        out = tmp_path / rev
        subprocess.run([sys.executable, "-c", "import sys, huggingface_hub as h; "
                        "h.snapshot_download(sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3])",
                        XET_ID, c.sha, str(out)], env=env, check=True, capture_output=True)
        got = {p: b for p, b in tree_of(out).items() if not p.startswith(".cache/")}
        assert got == files_of(expected[("model", XET_ID)], rev)
    assert bridge_bytes(hub, expected) == 0, "the official client used the LFS bridge"
    recon = [q for q in requests(hub, "cas") if "/reconstructions/" in q["path"]]
    assert recon and all(q["auth"] and q["status"] == 200 for q in recon)
    assert any("/xet-read-token/" in q["path"] for q in requests(hub, "hub"))
    assert sum(q["bytes"] for q in requests(hub, "cas") if "fetch_term" in q["path"]) > 0


def test_xet_files_come_from_the_cas_with_the_bridges_store_path(nix, hub, expected, tmp_path):
    p = fetch(nix)
    got = json.loads(p.stdout)
    assert tree_of(nix.real_path(got["path"])) == files_of(expected[("model", XET_ID)])
    assert bridge_bytes(hub, expected) == 0, "Xet-backed files came through the LFS bridge"
    xorbs = [q for q in requests(hub, "cas") if "fetch_term" in q["path"]]
    assert xorbs and all(not q["auth"] for q in xorbs), "a token went to a signed xorb URL"
    recon = [q for q in requests(hub, "cas") if "/reconstructions/" in q["path"]]
    assert recon and all(q["auth"] for q in recon)
    # Through the bridge, as before the repo was in Xet: the same snapshot.
    hub.settings(xet=False)
    hub.clear_log()
    other = Nix(str(tmp_path / "bridge"), hub.url)
    assert json.loads(fetch(other).stdout) == got
    assert requests(hub, "cas") == [] and bridge_bytes(hub, expected) > 0


def test_without_a_token_from_the_hub_the_bridge_serves_and_says_so(nix, hub, expected):
    hub.faults({"kind": "status", "where": "api", "match": "*/xet-read-token/*", "status": 404})
    p = fetch(nix)
    assert "no Xet CAS" in p.stderr and "through the Hub's LFS bridge" in p.stderr, p.stderr
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == files_of(expected[("model", XET_ID)])
    assert requests(hub, "cas") == []


def test_hf_hub_disable_xet_sends_them_through_the_bridge(nix, hub, expected):
    p = fetch(nix, env={"HF_HUB_DISABLE_XET": "1"})
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == files_of(expected[("model", XET_ID)])
    assert requests(hub, "cas") == [] and bridge_bytes(hub, expected) > 0


def test_v1_serves_where_v2_is_not(nix, hub, expected):
    hub.faults({"kind": "status", "where": "cas", "match": "/v2/*", "status": 404})
    p = fetch(nix)
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == files_of(expected[("model", XET_ID)])
    recon = [q for q in requests(hub, "cas") if "/reconstructions/" in q["path"]]
    assert any(q["path"].startswith("/v1/") and q["status"] == 200 for q in recon)
    assert bridge_bytes(hub, expected) == 0


def test_the_next_pieces_reconstruction_is_asked_for_while_this_one_is_fetched(nix, hub, expected):
    # A far CAS (every answer waits `latency` seconds), one connection, the
    # weights' two pieces. Without asking ahead, that connection's requests
    # go one after another, each once the answer before it came: no two
    # are ever in flight together. Asked ahead, the second piece's
    # reconstruction is under way while the first piece's requests are, so
    # that far from the CAS a piece costs one round trip, not two. Asked
    # once each: none is wasted.
    latency = 0.2
    hub.settings(latency=latency)
    p = fetch(nix, XET, "--option", "hf-connections", "1")
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == files_of(expected[("model", XET_ID)])
    cas = requests(hub, "cas")
    recon = [q for q in cas if "/reconstructions/" in q["path"]]
    second = [q for q in recon if range_start(q) == PIECE]
    assert len(second) == 1, "the second piece was not reconstructed once"

    def together(a, b):
        return min(a["time"], b["time"]) - max(a["began"], b["began"])
    assert any(together(second[0], q) >= latency / 2 for q in cas if q is not second[0]), \
        "the next piece's reconstruction waited for this piece's requests"
    # Each piece of each Xet file once (nothing asked ahead for nothing).
    sizes = {e.blob.sha256(): e.blob.size for e in xet_files(expected).values()}
    pieces = sum(-(-size // PIECE) for size in sizes.values())
    assert len(recon) == pieces and all(q["status"] == 200 for q in recon)
    assert bridge_bytes(hub, expected) == 0


def test_an_expired_token_and_an_expired_xorb_url_are_renewed(nix, hub, expected):
    hub.faults({"kind": "expired", "where": "cas", "count": 1}, {"kind": "expired", "where": "xorb", "count": 1})
    p = fetch(nix)
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == files_of(expected[("model", XET_ID)])
    tokens = [q for q in requests(hub, "hub") if "/xet-read-token/" in q["path"]]
    assert len(tokens) == 2, "the refused token was not renewed (once)"
    assert any(q["status"] == 403 for q in requests(hub, "cas")), "no xorb URL expired"
    assert bridge_bytes(hub, expected) == 0


def test_a_xorb_cut_off_resumes_and_a_short_lived_token_is_renewed(nix, hub, expected):
    # Every token is within the 30 s a token is renewed before its end.
    hub.settings(xet_token_ttl=30)
    hub.faults({"kind": "drop", "where": "xorb", "after": 200_000, "count": 1})
    p = fetch(nix)
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == files_of(expected[("model", XET_ID)])
    tokens = [q for q in requests(hub, "hub") if "/xet-read-token/" in q["path"]]
    assert len(tokens) >= 2, "a token about to expire was used"
    assert bridge_bytes(hub, expected) == 0


def test_a_wrong_byte_in_a_chunk_fails_the_file_and_nothing_is_stored(nix, hub):
    # Inside a stored chunk's bytes (not its header): the chunks decode, the
    # file's hashes do not match.
    hub.faults({"kind": "corrupt", "where": "xorb", "at": 5000})
    p = fetch(nix, XET, "--option", "hf-retries", "2", check=False)
    assert p.returncode != 0
    assert "model.safetensors" in p.stderr or "small.bin" in p.stderr, p.stderr
    assert stored(nix) == [], "a store path was made"


def test_corrupt_chunks_are_refused_naming_the_file_and_nothing_is_stored(nix, hub):
    hub.faults({"kind": "corrupt", "where": "xorb", "at": 3})
    p = fetch(nix, XET, "--option", "hf-retries", "2", check=False)
    assert p.returncode != 0
    assert "model.safetensors" in p.stderr or "small.bin" in p.stderr, p.stderr
    assert "the Xet CAS sent" in p.stderr and "of xorb" in p.stderr and "was refused: its header is invalid" \
        in p.stderr, p.stderr
    assert stored(nix) == [], "a store path was made"


def test_a_reconstruction_that_does_not_add_up_is_refused(nix, hub):
    hub.faults({"kind": "reconstruction", "where": "cas", "set": {"terms": []}})
    p = fetch(nix, XET, "--option", "hf-retries", "2", check=False)
    assert p.returncode != 0
    assert "the Xet CAS's reconstruction of '" in p.stderr and "short of the" in p.stderr, p.stderr
    assert stored(nix) == []


def test_a_cas_that_never_answers_ends_within_the_retry_bound(nix, hub):
    hub.faults({"kind": "hangup", "where": "cas"})
    p = fetch(nix, XET, "--option", "hf-retries", "3", check=False)
    assert p.returncode != 0
    assert "3 attempts over" in p.stderr and "raise hf-retries" in p.stderr, p.stderr
    assert "HF_HUB_DISABLE_XET=1" in p.stderr
    assert stored(nix) == []


def test_a_private_xet_repo_needs_the_users_token_which_goes_to_the_hub_alone(nix, hub, expected):
    url = f'"hf:{XET_PRIVATE_ID}"'
    p = fetch(Nix(nix.root + "-anonymous", hub.url), url, check=False)
    assert p.returncode != 0 and "was not found" in p.stderr, p.stderr
    assert requests(hub, "cas") == []
    hub.clear_log()
    p = fetch(nix, url, env={"HF_TOKEN": ALICE_TOKEN})
    assert tree_of(nix.real_path(json.loads(p.stdout)["path"])) == files_of(expected[("model", XET_PRIVATE_ID)])
    tokens = [q for q in requests(hub, "hub") if "/xet-read-token/" in q["path"]]
    assert tokens and all(q["auth"] for q in tokens)
    # The CAS answers only Xet tokens (a Hub token gets 401): nothing came
    # through the bridge, so every request to it carried the Xet token.
    assert requests(hub, "cas") and all(q["status"] in (200, 206) for q in requests(hub, "cas"))
    assert not any(q["server"] == "cdn" for q in hub.requests())


def test_the_xet_token_is_nowhere_but_in_requests_to_the_cas(nix, hub):
    p = fetch(nix, XET, "-vvv")
    tokens = [q for q in requests(hub, "hub") if "/xet-read-token/" in q["path"]]
    assert tokens
    marker = b"xet_"  # every token the stand-in issues starts so
    assert "xet_ey" not in p.stderr + p.stdout
    for root, _, names in os.walk(nix.root):
        for n in names:
            path = os.path.join(root, n)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    assert marker + b"ey" not in f.read(), f"a Xet token in {path}"


def test_a_relock_moves_only_the_chunks_it_does_not_have(nix, hub, expected, tmp_path):
    d = tmp_path / "flake"
    d.mkdir()

    def lock(rev):
        (d / "flake.nix").write_text(f'{{ inputs.m = {{ url = "hf:{XET_ID}/{rev}"; flake = false; }}; '
                                     'outputs = { self, m }: { }; }')
        hub.clear_log()
        nix.run("flake", "lock", cwd=str(d))
        got = nix.run("eval", "--impure", "--raw", "--expr",
                      f'(builtins.getFlake "path:{d}").inputs.m.outPath', cwd=str(d)).stdout
        assert tree_of(nix.real_path(got)) == files_of(expected[("model", XET_ID)], rev)
        return xorb_bytes(hub)

    size = len(xet_files(expected, "v2")["model.safetensors"].blob.read_all())
    assert lock("v1") > 0
    grown = lock("v2")
    assert 0 < grown <= 0.15 * size, f"{grown} bytes moved for a file that grew by 10 % of {size}"
    assert bridge_bytes(hub, expected) == 0
    header = lock("main")
    assert 0 < header <= 4 * (128 << 10), f"{header} bytes moved for a file whose first bytes changed"
