"""The nix-hf program against the stand-in, as a user or a fixed-output
derivation runs it: prefetch prints what `nix flake prefetch` prints (with
the plugin, in the real nix), fetch makes the verified tree at OUT whole or
not at all and resumes after a kill, faults end within their bounds with
the plugin's messages and exit statuses, and a token goes only where the
plugin would send it."""

import json
import os
import re
import signal
import subprocess

import pytest

from harness import (PIECE, PROGRAM, SHARD, cdn_bytes, files_of, program, tree_of, wait_for)
from standin.fixtures import ALICE_TOKEN


@pytest.fixture
def env(nix):
    """The program's environment: the test's own home and caches, the stand-in as HF_ENDPOINT."""
    return dict(nix.env)


def cache_of(env):
    return os.path.join(env["XDG_CACHE_HOME"], "nix-hf")


def kept_files(env):
    """What the program keeps of partial fetches (lock files aside)."""
    return [os.path.join(d, n) for d, _, ns in os.walk(cache_of(env)) for n in ns if not n.endswith(".lock")]


@pytest.mark.parametrize("url", [
    "hf:nixhf/tiny",
    "hf:nixhf/tiny/v1.0?exclude=*.txt",
    "hf:datasets/nixhf/tiny-data/refs/convert/parquet",
    "hf:nixhf/pieces?files=config.json,model-00001-of-00002.safetensors",
    "nixhf/tiny",
])
def test_prefetch_prints_what_nix_flake_prefetch_prints(nix, env, url):
    nix_url = url if url.startswith("hf:") else f"hf:{url}"
    want = json.loads(nix.run("flake", "prefetch", "--json", nix_url).stdout)
    # Determinate Nix also prints the narHash among the locked attributes;
    # upstream Nix, whose output the program mirrors, does not.
    assert want["locked"].pop("narHash", want["hash"]) == want["hash"]
    assert json.loads(program("prefetch", "--json", url, env=env).stdout) == want
    # (Determinate Nix names the narHash in the URL it prints, too.)
    said = [re.sub(r"([?&])narHash=[^'&]*(&?)", lambda m: m[1] if m[2] else "", l)
            for l in nix.run("flake", "prefetch", nix_url).stderr.splitlines() if l.startswith("Downloaded")]
    p = program("prefetch", url, env=env)
    assert [l for l in p.stderr.splitlines() if l.startswith("Downloaded")] == said
    # The expression it prints pins the same snapshot, in pure evaluation.
    pinned = nix.eval(f"let fetchHuggingFace = builtins.fetchHuggingFace; in ({p.stdout}).outPath", impure=False)
    assert pinned == want["storePath"]
    assert kept_files(env) == [], "prefetch left its download behind"


def test_fetch_makes_the_verified_tree_at_out(env, expected, tmp_path, nix):
    out = tmp_path / "tiny"
    p = program("fetch", "hf:nixhf/tiny", str(out), env=env)
    assert tree_of(out) == files_of(expected[("model", "nixhf/tiny")])
    want = json.loads(nix.run("flake", "prefetch", "--json", "hf:nixhf/tiny").stdout)["hash"]
    assert f"into '{out}' (hash '{want}')" in p.stderr
    assert len(p.stderr.splitlines()) == 1, "not a terminal: a build log gets what happened, no progress"
    assert kept_files(env) == []
    p = program("fetch", "hf:nixhf/tiny", str(out), env=env, check=False)
    assert p.returncode == 1 and f"error: '{out}' already exists" in p.stderr
    # $out is OUT only for the derivation's builder (--nix-build).
    p = program("fetch", "hf:nixhf/tiny", env=dict(env, out=str(tmp_path / "x")), check=False)
    assert p.returncode == 1 and "error: no OUT given: name the directory to make" in p.stderr, p.stderr
    assert not (tmp_path / "x").exists()


def test_fetch_to_another_file_system_is_whole_or_nothing(env, tmp_path, expected):
    target = tmp_path / "elsewhere"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(target)], check=True)
    try:
        program("fetch", "hf:nixhf/tiny", str(target / "tiny"), env=env)
        assert tree_of(target / "tiny") == files_of(expected[("model", "nixhf/tiny")])
        assert os.listdir(target) == ["tiny"], "a staging copy was left beside OUT"
    finally:
        subprocess.run(["umount", str(target)])


def test_a_copy_that_fills_the_disk_leaves_nothing_beside_out(env, tmp_path):
    target = tmp_path / "small"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], check=True)
    try:
        p = program("fetch", "hf:nixhf/pieces?include=*.json,model-00001*", str(target / "pieces"), env=env,
                    check=False)
        assert p.returncode == 1 and "No space left on device" in p.stderr, p.stderr
        assert os.listdir(target) == [], "a partial copy was left beside OUT"
    finally:
        subprocess.run(["umount", str(target)])


def test_a_terminal_gets_a_progress_line(env, tmp_path):
    primary, secondary = os.openpty()
    p = subprocess.Popen([PROGRAM, "fetch", "hf:nixhf/pieces?include=*.json,model-00001*", str(tmp_path / "o"), "-v"],
                         env=env, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    shown = b""
    while chunk := read_pty(primary):
        shown += chunk
    assert p.wait() == 0
    text = shown.decode()
    assert "\r\x1b[K" in text and " / 40.0 MiB (" in text and "%) hf:nixhf/pieces" in text, text
    assert "fetching 'model-00001-of-00002.safetensors' (41943040 bytes)" in text, "-v names each file"


def read_pty(fd):
    try:
        return os.read(fd, 65536)
    except OSError:  # the program closed its end
        return b""


def test_a_wrong_nar_hash_makes_nothing(env, tmp_path, nix):
    other = json.loads(nix.run("flake", "prefetch", "--json", "hf:nixhf/tiny?include=*.json").stdout)["hash"]
    out = tmp_path / "tiny"
    p = program("fetch", "hf:nixhf/tiny", str(out), "--nar-hash", other, env=env, check=False)
    assert p.returncode == 102, p.stderr
    assert f"error: hash mismatch in Hugging Face snapshot 'hf:nixhf/tiny':\n  specified: {other}\n       got: " \
        in p.stderr
    assert not out.exists() and kept_files(env) == []


def recorded_pieces(env, size):
    return sum(len(open(f).read().split()) for f in kept_files(env) if f.endswith(f"-{size}.pieces"))


def test_fetch_resumes_after_a_kill(env, hub, tmp_path):
    out = tmp_path / "pieces"
    hub.settings(cdn_rate=8_000_000)
    p = subprocess.Popen([PROGRAM, "fetch", "hf:nixhf/pieces", str(out), "--connections", "2"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for("three pieces recorded on disk", lambda: recorded_pieces(env, SHARD) >= 3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not out.exists(), "a killed fetch left something at OUT"
    hub.settings(cdn_rate=0)
    hub.clear_log()
    program("fetch", "hf:nixhf/pieces", str(out), env=env)
    assert cdn_bytes(hub) <= 2 * SHARD - 3 * PIECE, "the second run did not resume"
    check = tmp_path / "check"
    program("fetch", "hf:nixhf/pieces", str(check), "--cache-dir", str(tmp_path / "fresh"), env=env)
    assert tree_of(out) == tree_of(check)


def test_ctrl_c_says_so_and_keeps_what_arrived(env, hub, tmp_path):
    hub.settings(cdn_rate=4_000_000)
    p = subprocess.Popen([PROGRAM, "fetch", "hf:nixhf/pieces", str(tmp_path / "out")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for("a piece recorded on disk", lambda: recorded_pieces(env, SHARD) >= 1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and err.strip().endswith("error: interrupted by the user"), err
    assert recorded_pieces(env, SHARD) >= 1 and not (tmp_path / "out").exists()


def giving_up(p):
    lines = [l for l in p.stderr.splitlines() if "giving up on" in l]
    assert len(lines) == 1 and p.returncode == 1, p.stderr
    return lines[0]


def test_faults_end_within_their_bounds(env, hub, tmp_path):
    hub.faults({"kind": "status", "status": 503, "where": "api"})
    line = giving_up(program("prefetch", "hf:nixhf/tiny", "--retries", "3", env=env, check=False))
    assert line.startswith("error: giving up on 'hf:nixhf/tiny' (resolving 'main'): the Hugging Face Hub at ")
    assert "answered 503; 3 attempts over" in line
    assert len([q for q in hub.requests() if "/api/" in q["path"]]) == 3
    hub.reset()
    hub.faults({"kind": "stall", "where": "cdn", "after": 1000, "seconds": 600})
    line = giving_up(program("fetch", "hf:nixhf/pieces?files=model-00001-of-00002.safetensors", str(tmp_path / "o"),
                             "--stall-timeout", "1", "--retries", "100", "--retry-time", "4", env=env, check=False))
    assert "stalled at byte" in line and line.endswith("raise hf-retry-time (now 4 s) to keep trying longer")
    assert not (tmp_path / "o").exists()


def test_corrupt_bytes_exit_102_and_are_not_kept(env, hub, tmp_path):
    hub.faults({"kind": "corrupt", "where": "cdn", "match": "model-00002*", "at": 123, "count": 1})
    out = tmp_path / "o"
    p = program("fetch", "hf:nixhf/pieces", str(out), env=env, check=False)
    assert p.returncode == 102, p.stderr
    assert "error: 'model-00002-of-00002.safetensors' of 'hf:nixhf/pieces' is corrupt: expected sha256 " in p.stderr
    assert not out.exists()
    hub.clear_log()
    program("fetch", "hf:nixhf/pieces", str(out), env=env)
    assert cdn_bytes(hub) == SHARD, "the corrupt shard was not fetched again, or the good one was"


def test_the_token_goes_only_where_the_plugin_sends_it(env, hub, tmp_path, other_hub):
    out = tmp_path / "gated"
    p = program("fetch", "hf:nixhf/gated", str(out), env=env, check=False)
    assert p.returncode == 1 and "'hf:nixhf/gated' is a gated model and no token was sent" in p.stderr
    (tmp_path / "secret").write_text(ALICE_TOKEN + "\n")
    for how in [{"HF_TOKEN": ALICE_TOKEN}, {"--token-file": str(tmp_path / "secret")}]:
        hub.clear_log()
        flags = [a for k, v in how.items() if k.startswith("--") for a in (k, v)]
        program("fetch", "hf:nixhf/gated", str(out), *flags, env=dict(env, **{k: v for k, v in how.items()
                                                                               if not k.startswith("--")}))
        assert open(out / "README.md").read() == "# gated\n"
        assert any(q["auth"] for q in hub.requests() if q["server"] == "hub")
        assert not any(q["auth"] for q in hub.requests() if q["server"] == "cdn"), "the token went to the CDN"
        subprocess.run(["rm", "-rf", str(out)], check=True)
    # An endpoint given on the command line (or in a derivation) that the
    # user's environment does not name gets no token that names no host.
    p = program("prefetch", "hf:nixhf/gated", "--endpoint", other_hub.url, env=dict(env, HF_TOKEN=ALICE_TOKEN),
                check=False)
    assert p.returncode == 1 and f"the token from HF_TOKEN was not sent to {other_hub.url}" in p.stderr, p.stderr
    assert other_hub.requests() and not any(q["auth"] for q in other_hub.requests())
    hits = subprocess.run(["grep", "-rla", ALICE_TOKEN, str(tmp_path), env["XDG_CACHE_HOME"]], capture_output=True,
                          text=True)
    assert ALICE_TOKEN not in p.stderr and hits.stdout.strip() == str(tmp_path / "secret"), hits.stdout


@pytest.fixture
def other_hub(tmp_path_factory):
    from harness import Standin
    s = Standin(str(tmp_path_factory.mktemp("other")))
    yield s
    s.stop()


@pytest.mark.parametrize("url", [
    "hf:nixhf/tiny?include=a,,b",
    "hf:nixhf/tiny?files=/etc/passwd",
    "hf:nixhf/tiny?ref=main&rev=" + "a" * 40,
    "hf:nixhf/tiny?color=blue",
    "hf:nixhf/tiny/main/extra/bits?ref=x",
])
def test_bad_input_gets_the_plugins_refusal(nix, env, url):
    nix_says = nix.fails("eval", "--impure", "--expr", f'builtins.fetchTree "{url}"').stderr
    p = program("prefetch", url, env=env, check=False)
    assert p.returncode == 1 and p.stderr.startswith("error: ")
    message = p.stderr.removeprefix("error: ").strip()
    assert message in " ".join(nix_says.split()), f"{message!r} not in {nix_says!r}"


def test_every_command_has_help(env):
    for args in [[], ["prefetch"], ["fetch"], ["pin"], ["pin", "add"], ["pin", "update"], ["pin", "remove"],
                 ["hub-cache"]]:
        p = program(*args, "--help", env=env)
        assert p.stdout.startswith(("Usage:", "Hugging Face")) or "Usage: nix-hf" in p.stdout, p.stdout
    # A usage error is an error like any other (1), as in nix; --version is not.
    p = program("fetch", env=env, check=False)
    assert p.returncode == 1 and "required" in p.stderr
    assert program("--version", env=env).stdout.startswith("nix-hf ")


def test_pins_follow_their_refs(env, hub, tmp_path):
    pins = tmp_path / "hf-pins.json"
    program("pin", "add", "hf:nixhf/moving", "--file", str(pins), env=env)
    program("pin", "add", "hf:nixhf/tiny/v1.0", "--name", "fixed", "--file", str(pins), env=env)
    before = json.loads(pins.read_text())["pins"]
    assert before["moving"]["ref"] == "main" and before["fixed"]["ref"] == "v1.0"
    p = program("pin", "add", "hf:nixhf/tiny", "--name", "moving", "--file", str(pins), env=env, check=False)
    assert p.returncode == 1 and "pin 'moving' is already in" in p.stderr
    hub.clear_log()
    p = program("pin", "update", "--file", str(pins), env=env)
    assert "pin 'moving' is up to date" in p.stderr and cdn_bytes(hub) == 0
    assert not any("/resolve/" in q["path"] for q in hub.requests()), "an unchanged pin was fetched again"
    new = hub.commit("nixhf/moving", {"README.md": "# moving, for the pins\n"})
    p = program("pin", "update", "moving", "--file", str(pins), env=env)
    after = json.loads(pins.read_text())["pins"]
    assert after["moving"]["rev"] == new["sha"] != before["moving"]["rev"]
    assert after["moving"]["narHash"] != before["moving"]["narHash"] and after["fixed"] == before["fixed"]
    assert f"• Updated pin 'moving':\n    'hf:nixhf/moving/{before['moving']['rev']}'" in p.stderr
    p = program("pin", "update", "nope", "--file", str(pins), env=env, check=False)
    assert p.returncode == 1 and "has no pin 'nope'; its pins are: fixed, moving" in p.stderr
    program("pin", "remove", "fixed", "--file", str(pins), env=env)
    assert list(json.loads(pins.read_text())["pins"]) == ["moving"]
