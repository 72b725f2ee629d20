"""Faults survived, nothing bad kept: each of the stand-in's fault switches
against the real nix. A fault either leaves the fetch correct or fails it
cleanly, with no store path and nothing corrupt kept for the next run."""

import json
import subprocess

import pytest

from harness import (PIECE, PIECES, SHARD, Nix, cdn_bytes, partial_files, range_start, sources, start_fetch,
                     wait_for, wait_for_cdn_bytes)


@pytest.fixture(scope="module")
def clean_hash(tmp_path_factory, standin):
    """The snapshot's narHash from an undisturbed fetch."""
    return Nix(str(tmp_path_factory.mktemp("clean")), standin.url).eval(PIECES)


def test_dropped_connection_resumes_where_it_was(nix, hub, clean_hash):
    hub.faults({"kind": "drop", "where": "cdn", "match": "model-00001*", "after": 5_000_000, "count": 1})
    assert nix.eval(PIECES) == clean_hash
    starts = [range_start(q) for q in hub.requests() if q["server"] == "cdn"]
    assert any(s % PIECE == 5_000_000 for s in starts), "the dropped piece was not resumed mid-way"
    assert cdn_bytes(hub) == 2 * SHARD, "bytes were fetched twice"


def test_stalled_transfer_times_out_and_retries(nix, hub, clean_hash):
    hub.faults({"kind": "stall", "where": "cdn", "after": 1_000_000, "seconds": 5, "count": 1})
    assert nix.eval(PIECES, "--option", "hf-stall-timeout", "2") == clean_hash
    # The stand-in logs the stalled request once it hangs up, after its stall.
    stalled = lambda: [q for q in hub.requests() if q["server"] == "cdn" and q["bytes"] == 1_000_000]
    wait_for("the stalled request in the stand-in's log", lambda: stalled())
    cdn = [q for q in hub.requests() if q["server"] == "cdn"]
    stalled = stalled()
    assert len(stalled) == 1
    assert any(q["path"] == stalled[0]["path"] and range_start(q) == range_start(stalled[0]) + 1_000_000 for q in cdn), \
        "the stalled piece was not resumed where it stopped"


def test_rate_limits_are_waited_out(nix, hub, clean_hash):
    # How long nix-hf waits (as Retry-After says, counted against the
    # budget) is checked by the retry runner's unit tests on a simulated
    # clock; here, that a 429 on the API and on the CDN is survived.
    hub.faults({"kind": "status", "status": 429, "retry_after": 1, "where": "api", "count": 1},
               {"kind": "status", "status": 429, "retry_after": 1, "where": "cdn", "count": 1})
    assert nix.eval(PIECES) == clean_hash
    statuses = [q["status"] for q in hub.requests() if q["server"] == "hub" and "/api/" in q["path"]]
    assert statuses[:2] == [429, 200]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(nix, hub, clean_hash, status):
    hub.faults({"kind": "status", "status": status, "where": "api", "count": 2},
               {"kind": "status", "status": status, "where": "cdn", "count": 2})
    assert nix.eval(PIECES) == clean_hash


def test_expired_download_url_is_resolved_again(nix, hub, clean_hash):
    hub.faults({"kind": "expired", "where": "cdn", "match": "model-00002*", "count": 1})
    assert nix.eval(PIECES) == clean_hash
    resolves = [q for q in hub.requests() if "/resolve/" in q["path"] and "model-00002" in q["path"]]
    assert len(resolves) == 2


def test_server_ignoring_range_still_gives_the_right_bytes(nix, hub, clean_hash):
    hub.faults({"kind": "ignore_range", "where": "cdn", "count": 3})
    assert nix.eval(PIECES) == clean_hash
    assert sum(1 for q in hub.requests() if q["server"] == "cdn" and q["status"] == 200) == 3


def test_wrong_bytes_fail_naming_the_file_and_are_not_kept(nix, hub, clean_hash):
    hub.faults({"kind": "corrupt", "where": "cdn", "match": "model-00002*", "at": 123, "count": 1})
    p = nix.fails("eval", "--impure", "--expr", PIECES)
    assert "'model-00002-of-00002.safetensors' of 'hf:nixhf/pieces' is corrupt: expected sha256 " in p.stderr
    assert ", got " in p.stderr
    assert sources(nix) == [], "a corrupt snapshot reached the store"
    hub.clear_log()
    assert nix.eval(PIECES) == clean_hash
    # The verified shard is reused from the partial data; the corrupt one was
    # thrown away and comes again.
    assert cdn_bytes(hub) == SHARD, "the corrupt file was not fetched again, or the good one was"
    assert partial_files(nix) == [], "partial data left after a successful fetch"


def test_two_nix_processes_fetching_at_once(nix, hub, clean_hash):
    # A store that exists, as users' do: two nix creating a fresh one at once
    # race in Nix itself, before any fetching.
    nix.run("eval", "--expr", "1")
    hub.settings(cdn_rate=40_000_000)
    a, b = start_fetch(nix), start_fetch(nix)
    outs = [p.communicate(timeout=120) for p in (a, b)]
    assert a.returncode == b.returncode == 0, outs
    assert json.loads(outs[0][0]) == json.loads(outs[1][0]) == clean_hash
    assert len(sources(nix)) == 1


def test_disk_full_in_the_partial_directory(nix, hub, clean_hash, tmp_path):
    cache = tmp_path / "small-cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(cache)], check=True)
    try:
        nix.env["XDG_CACHE_HOME"] = str(cache)
        p = nix.fails("eval", "--impure", "--expr", PIECES)
        assert "No space left on device" in p.stderr and str(cache) in p.stderr, p.stderr
        assert sources(nix) == []
        subprocess.run(["mount", "-o", "remount,size=400m", str(cache)], check=True)
        assert nix.eval(PIECES) == clean_hash
        assert partial_files(nix) == [], "junk left after the next successful run"
    finally:
        subprocess.run(["umount", str(cache)])


def test_a_store_on_another_file_system_gets_the_stream(nix, hub, clean_hash, tmp_path):
    """Where the verified tree cannot be moved into the store (the cache is on
    another file system), the NAR is streamed into it; a locked input keeps
    nothing in the cache, so a cache far smaller than the snapshot is enough."""
    rev = Nix(str(tmp_path / "pin"), hub.url).eval('(builtins.fetchTree "hf:nixhf/pieces").rev')
    hub.clear_log()
    cache = tmp_path / "tiny-cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(cache)], check=True)
    try:
        nix.env["XDG_CACHE_HOME"] = str(cache)
        locked = f'(builtins.fetchTree {{ type = "hf"; repo = "nixhf/pieces"; rev = "{rev}"; narHash = "{clean_hash}"; }})'
        assert nix.eval(f"{locked}.narHash") == clean_hash
        assert len(sources(nix)) == 1 and partial_files(nix) == []
        assert cdn_bytes(hub) == 2 * SHARD
    finally:
        subprocess.run(["umount", str(cache)])


def test_ctrl_c_partial_data_holds_no_token(nix, hub):
    from standin.fixtures import ALICE_TOKEN
    hub.settings(cdn_rate=2_000_000)
    p = start_fetch(nix, env={"HF_TOKEN": ALICE_TOKEN})
    wait_for_cdn_bytes(hub, 1)
    p.send_signal(2)
    _, err = p.communicate(timeout=10)
    assert partial_files(nix), "nothing partial to inspect"
    hits = subprocess.run(["grep", "-rla", ALICE_TOKEN, nix.env["XDG_CACHE_HOME"]], capture_output=True, text=True)
    assert hits.stdout == "" and ALICE_TOKEN not in err


@pytest.mark.parametrize("entries,message", [
    ([{"type": "file", "path": "README.md", "size": 1, "oid": "0" * 40}], "names 'README.md' twice"),
    ([{"type": "file", "path": "nested", "size": 1, "oid": "0" * 40}], "has 'nested' both as a file and as a folder"),
    ([{"type": "file", "path": "config.json/inner", "size": 1, "oid": "0" * 40}],
     "has 'config.json' both as a file and as a folder"),
    ([{"type": "file", "path": "x" * 300, "size": 1, "oid": "0" * 40}], "unsafe file path"),
    ([{"type": "file", "path": "ok.bin", "size": 1, "oid": "0" * 40, "lfs": {"oid": "nothex", "size": 1}}],
     "no valid sha256 for LFS file 'ok.bin'"),
])
def test_lying_listings_are_refused(nix, hub, entries, message):
    hub.faults({"kind": "listing", "match": "nixhf/tiny", "entries": entries})
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/tiny").rev')
    assert message in p.stderr, p.stderr
    assert not any("/resolve" in q["path"] for q in hub.requests()), "a file was fetched from a refused listing"
    assert sources(nix) == []


def test_unreachable_hub_falls_back_to_the_cached_commit(nix, hub, expected):
    rev = nix.eval('(builtins.fetchTree "hf:nixhf/tiny").rev')
    hub.faults({"kind": "hangup", "where": "api"})
    p = nix.run("eval", "--impure", "--json", "--expr", '(builtins.fetchTree "hf:nixhf/tiny").rev',
                "--option", "tarball-ttl", "0", "--option", "hf-retries", "2")
    assert json.loads(p.stdout) == rev
    assert "cannot reach the Hugging Face Hub" in p.stderr and f"using the commit {rev}" in p.stderr
    # Without an earlier answer there is nothing to fall back to: a clear error.
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/tiny-space").rev',
                  "--option", "hf-retries", "2")
    assert "cannot reach the Hugging Face Hub at" in p.stderr
