"""Faults that never pass end, each within its documented bound (hf-retries
attempts, hf-retry-time seconds), in one error that names the input, what
the server said, how many attempts over how long, and the setting that
raises the bound; and nothing is stored."""

import re
import socket

import pytest

from harness import PIECES, sources

ONE_FILE = '(builtins.fetchHuggingFace { repo = "nixhf/pieces"; files = [ "model-00001-of-00002.safetensors" ]; }).narHash'


def giving_up(p):
    """The one error line."""
    lines = [l.strip() for l in p.stderr.splitlines() if "giving up on" in l]
    assert len(lines) == 1, p.stderr
    return lines[0]


def attempts(line):
    return int(re.search(r"; (\d+) attempts? over [0-9.]+ s; ", line).group(1))


@pytest.mark.parametrize("status,said", [(429, "answered 429 (Retry-After: 1)"), (503, "answered 503")])
def test_an_api_that_always_refuses_ends_after_hf_retries(nix, hub, status, said):
    hub.faults({"kind": "status", "status": status, "retry_after": 1 if status == 429 else None, "where": "api"})
    p = nix.fails("eval", "--impure", "--expr", PIECES, "--option", "hf-retries", "3")
    line = giving_up(p)
    assert line.startswith("error: giving up on 'hf:nixhf/pieces' (resolving 'main'): the Hugging Face Hub at "), line
    assert said in line and attempts(line) == 3 and line.endswith("raise hf-retries (now 3) to try more often")
    assert len([q for q in hub.requests() if "/api/" in q["path"]]) == 3, "one request per attempt"
    assert sources(nix) == []


def test_a_download_url_that_always_expires_ends_after_hf_retries(nix, hub):
    hub.faults({"kind": "expired", "where": "cdn"})
    p = nix.fails("eval", "--impure", "--expr", ONE_FILE, "--option", "hf-retries", "3")
    line = giving_up(p)
    assert "'model-00001-of-00002.safetensors' of 'hf:nixhf/pieces" in line
    assert "the CDN refused the download URL as expired (403), even freshly resolved" in line and attempts(line) == 3
    # Each piece has its own budget; the one that ran out made 3 attempts.
    start = re.search(r"\(bytes (\d+)-", line).group(1)
    tries = [q for q in hub.requests() if q["server"] == "cdn" and q["range"].startswith(f"bytes={start}-")]
    assert len(tries) == 3, "each renewal is an attempt"
    assert sources(nix) == []


def test_a_transfer_that_always_stalls_ends_after_hf_retry_time(nix, hub):
    hub.faults({"kind": "stall", "where": "cdn", "after": 1000, "seconds": 600})
    p = nix.fails("eval", "--impure", "--expr", ONE_FILE, "--option", "hf-stall-timeout", "1",
                  "--option", "hf-retries", "100", "--option", "hf-retry-time", "4")
    line = giving_up(p)
    assert "stalled at byte" in line and "for 1 s (hf-stall-timeout)" in line, line
    assert line.endswith("raise hf-retry-time (now 4 s) to keep trying longer") and attempts(line) < 100
    assert sources(nix) == []


def test_a_server_asking_to_wait_past_the_budget_is_not_waited_for(nix, hub):
    hub.faults({"kind": "status", "status": 429, "retry_after": 3600, "where": "api"})
    p = nix.fails("eval", "--impure", "--expr", PIECES, "--option", "hf-retry-time", "60")
    line = giving_up(p)
    assert "answered 429 (Retry-After: 3600); 1 attempt over" in line
    assert line.endswith("the server asks to wait 3600 s, and raise hf-retry-time (now 60 s) to keep trying longer")


def test_a_hub_that_refuses_connections_ends_after_hf_retries(nix):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = nix.fails("eval", "--impure", "--expr", PIECES, "--option", "hf-endpoint", f"http://127.0.0.1:{port}",
                  "--option", "hf-retries", "2")
    line = giving_up(p)
    assert f"cannot reach the Hugging Face Hub at http://127.0.0.1:{port} (" in line and attempts(line) == 2, line
    assert sources(nix) == []
