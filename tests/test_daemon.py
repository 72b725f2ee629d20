"""Through a nix-daemon: the daemon runs as root on its own store, the client
(with the plugin) as an unprivileged user with --store daemon, as on NixOS.
Fetching happens in the client, which streams the snapshot's NAR into the
daemon as it arrives: the daemon writes it, once. A fresh lock also keeps a
resumable copy in the user's cache; a locked input (narHash known) keeps
nothing there, unless hf-resumable-copy says otherwise."""

import json
import os
import re
import signal
import subprocess

import pytest

from harness import PIECE, PIECES_REPO, SHARD, Daemon, Nix, cdn_bytes, range_start, wait_for
from standin.fixtures import ALICE_TOKEN

PIECES_URL = "hf:" + PIECES_REPO.split("=")[0]
SNAPSHOT = 2 * SHARD


@pytest.fixture
def daemon(hub):
    d = Daemon(hub.url)
    yield d
    d.stop()


def measured(d, expr, *options):
    """Evaluates `expr` as the client, and how many bytes the client itself
    wrote to disk (directly or through the page cache), as the kernel
    accounts them."""
    out, usage = d.waited("eval", "--impure", "--json", "--expr", expr, *options)
    return json.loads(out), usage.ru_oublock * 512


@pytest.fixture(scope="module")
def pinned(tmp_path_factory, standin):
    """rev and narHash of the pieces snapshot, from a local-store fetch."""
    n = Nix(str(tmp_path_factory.mktemp("pinned")), standin.url)
    return n.eval(f'let r = builtins.fetchTree "{PIECES_URL}"; in {{ inherit (r) rev narHash; }}')


def locked(pin):
    repo = PIECES_URL.removeprefix("hf:")
    return f'(builtins.fetchTree {{ type = "hf"; repo = "{repo}"; rev = "{pin["rev"]}"; narHash = "{pin["narHash"]}"; }})'


def test_fetch_and_lock_through_the_daemon(daemon, expected):
    attrs = daemon.eval('let r = builtins.fetchTree "hf:nixhf/tiny"; in { inherit (r) rev narHash; p = r.outPath; }')
    assert attrs["rev"] == expected[("model", "nixhf/tiny")].resolve("main").sha
    # The path is valid in the daemon's store and owned by it, not the user.
    info = os.stat(attrs["p"])
    assert info.st_uid == 0
    assert daemon.run("path-info", attrs["p"])[0].strip() == attrs["p"]
    flake = os.path.join(daemon.home, "flake")
    os.makedirs(flake)
    with open(os.path.join(flake, "flake.nix"), "w") as f:
        f.write('{ inputs.m = { url = "hf:nixhf/tiny"; flake = false; }; outputs = { self, m }: { }; }')
    os.chown(flake, daemon.pw.pw_uid, daemon.pw.pw_gid)
    os.chown(os.path.join(flake, "flake.nix"), daemon.pw.pw_uid, daemon.pw.pw_gid)
    daemon.run("flake", "lock", cwd=flake)
    locked = json.load(open(os.path.join(flake, "flake.lock")))["nodes"]["m"]["locked"]
    assert locked["narHash"] == attrs["narHash"] and locked["rev"] == attrs["rev"]


def test_a_fresh_fetch_streams_into_the_daemon_and_keeps_a_resumable_copy(daemon, hub, pinned):
    attrs, wrote = measured(daemon, f'let r = builtins.fetchTree "{PIECES_URL}"; in {{ inherit (r) narHash; p = r.outPath; }}')
    assert attrs["narHash"] == pinned["narHash"], "the daemon's snapshot is the local store's"
    assert wrote >= SNAPSHOT, f"the client wrote {wrote} bytes: no resumable copy was kept"
    assert cdn_bytes(hub) == SNAPSHOT, "no byte fetched twice"
    assert daemon.partial_files() == [], "the copy outlived the fetch"


def test_a_locked_input_is_written_once_by_the_daemon(daemon, hub, pinned):
    attrs, wrote = measured(daemon, f"let r = {locked(pinned)}; in {{ inherit (r) narHash; p = r.outPath; }}")
    assert attrs["narHash"] == pinned["narHash"]
    assert os.path.getsize(os.path.join(attrs["p"], "model-00001-of-00002.safetensors")) == SHARD
    assert wrote < SNAPSHOT / 10, f"the client wrote {wrote} bytes of a {SNAPSHOT}-byte snapshot"
    assert cdn_bytes(hub) == SNAPSHOT


def test_a_fresh_lock_keeps_no_copy_with_hf_resumable_copy_never(daemon, hub, pinned):
    expr = f'let r = builtins.fetchTree "{PIECES_URL}"; in {{ inherit (r) narHash; }}'
    attrs, wrote = measured(daemon, expr, "--option", "hf-resumable-copy", "never")
    assert attrs["narHash"] == pinned["narHash"]
    assert wrote < SNAPSHOT / 10, f"the client wrote {wrote} bytes of a {SNAPSHOT}-byte snapshot"


def test_a_wrong_hf_resumable_copy_is_named(daemon):
    _, err, code = daemon.run("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/tiny").narHash',
                              "--option", "hf-resumable-copy", "sometimes", check=False)
    assert code != 0
    assert "hf-resumable-copy is 'sometimes'; set it to 'fresh' (the default), 'always' or 'never'" in err, err


def recorded(daemon):
    """Pieces of the shards recorded in the user's cache."""
    pieces = [os.path.join(d, n) for d, _, ns in os.walk(daemon.partial()) for n in ns
              if n.endswith(f"-{SHARD}.pieces")]
    return sum(len(open(f).read().split()) for f in pieces)


# A fresh lock keeps a resumable copy by default; a locked input when told to.
@pytest.mark.parametrize("how", ["fresh", "locked, hf-resumable-copy = always"])
def test_a_killed_client_resumes_through_the_daemon(daemon, hub, pinned, how):
    fetch = locked(pinned) if how.startswith("locked") else f'(builtins.fetchTree "{PIECES_URL}")'
    options = ["--option", "hf-resumable-copy", "always"] if how.startswith("locked") else []
    hub.settings(cdn_rate=8_000_000)
    p = daemon.start("eval", "--impure", "--expr", f"{fetch}.narHash", "--option", "hf-connections", "2", *options)
    wait_for("three pieces of the shards recorded in the user's cache", lambda: recorded(daemon) >= 3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert daemon.valid_sources() == [], "a killed fetch left a store path"
    hub.settings(cdn_rate=0)
    hub.clear_log()
    assert daemon.eval(f"{fetch}.narHash", *options) == pinned["narHash"]
    again = cdn_bytes(hub)
    assert again <= SNAPSHOT - 3 * (8 << 20), f"the resumed fetch took {again} bytes again"


def test_a_killed_locked_fetch_without_a_copy_starts_again(daemon, hub, pinned):
    """The price of a single write (see README, How bytes move): nothing of
    an interrupted locked fetch is left, neither in the store nor here."""
    hub.settings(cdn_rate=8_000_000)
    p = daemon.start("eval", "--impure", "--expr", f"{locked(pinned)}.narHash", "--option", "hf-connections", "2")
    wait_for("three pieces of the shards sent by the CDN", lambda: cdn_bytes(hub) >= 3 * (8 << 20))
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert daemon.valid_sources() == [], "a killed fetch left a store path"
    assert daemon.partial_files() == [], "a locked fetch kept a copy"
    hub.settings(cdn_rate=0)
    hub.clear_log()
    assert daemon.eval(f"{locked(pinned)}.narHash") == pinned["narHash"]
    assert cdn_bytes(hub) == SNAPSHOT


@pytest.mark.parametrize("how", ["fresh", "locked"])
def test_a_corrupt_byte_is_refused_with_no_store_path(daemon, hub, pinned, how):
    hub.faults({"kind": "corrupt", "where": "cdn", "match": "model-00002*", "at": 123, "count": 1})
    fetch = locked(pinned) if how == "locked" else f'(builtins.fetchTree "{PIECES_URL}")'
    expr = f"{fetch}.narHash"
    _, err, code = daemon.run("eval", "--impure", "--expr", expr, check=False)
    assert code == 102, err
    assert "'model-00002-of-00002.safetensors' of 'hf:nixhf/pieces" in err and "is corrupt: expected sha256 " in err
    assert daemon.valid_sources() == [], "a corrupt snapshot became a store path"
    assert daemon.eval(expr) == pinned["narHash"]


@pytest.mark.parametrize("how", ["fresh", "locked"])
def test_a_dropped_connection_resumes_within_its_piece_through_the_daemon(daemon, hub, pinned, how):
    hub.faults({"kind": "drop", "where": "cdn", "match": "model-00001*", "after": 5_000_000, "count": 1})
    fetch = locked(pinned) if how == "locked" else f'(builtins.fetchTree "{PIECES_URL}")'
    assert daemon.eval(f"{fetch}.narHash") == pinned["narHash"]
    starts = [range_start(q) for q in hub.requests() if q["server"] == "cdn"]
    assert any(s % PIECE == 5_000_000 for s in starts), "the dropped piece was not resumed mid-way"
    assert cdn_bytes(hub) == SNAPSHOT, "bytes were fetched twice"


@pytest.mark.parametrize("how", ["fresh", "locked"])
def test_a_fault_that_never_passes_ends_in_one_error_through_the_daemon(daemon, hub, pinned, how):
    hub.faults({"kind": "status", "status": 503, "where": "cdn", "match": "model-00002*"})
    fetch = locked(pinned) if how == "locked" else f'(builtins.fetchTree "{PIECES_URL}")'
    _, err, code = daemon.run("eval", "--impure", "--expr", f"{fetch}.narHash", "--option", "hf-retries", "3",
                              check=False)
    assert code != 0
    lines = [l.strip() for l in err.splitlines() if "giving up on" in l]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: giving up on 'model-00002-of-00002.safetensors' of 'hf:nixhf/pieces"), err
    assert "answered 503; 3 attempts over" in lines[0] and lines[0].endswith("raise hf-retries (now 3) to try more often")
    # The first shard was being streamed into the daemon when the fetch
    # gave up; nothing else is said: not the daemon's view of the NAR it
    # was cut off from.
    first = cdn_bytes(hub, "model-00001")
    assert first >= PIECE, f"only {first} bytes of the first shard were served"
    assert not re.search(r"archive|NAR|daemon|disconnect|unexpected", err), err
    assert daemon.valid_sources() == [], "a failed fetch left a store path"
    hub.faults()
    assert daemon.eval(f"{fetch}.narHash") == pinned["narHash"]


def test_a_gated_repo_through_the_daemon_with_the_users_token(daemon, hub):
    assert daemon.eval('(builtins.fetchTree "hf:nixhf/gated").narHash', env={"HF_TOKEN": ALICE_TOKEN}).startswith("sha256-")
    assert all(q["auth"] is False for q in hub.requests() if q["server"] == "cdn"), "the token went to the CDN"
    # The token reached neither the daemon's store, its log, nor the user's caches.
    for top in (daemon.store, daemon.log, daemon.home):
        found = subprocess.run(["grep", "-rl", ALICE_TOKEN, top], capture_output=True, text=True).stdout
        assert found == "", f"the token is in {found}"
