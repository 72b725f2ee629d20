"""Gated and private repos with tokens from where users keep them; the token
reaches only the Hub's origin and is never written anywhere."""

import os
import subprocess

import pytest

from standin.fixtures import ALICE_TOKEN, BOB_TOKEN

GATED = '(builtins.fetchTree "hf:nixhf/gated").rev'


def test_gated_without_token_says_what_to_do(nix):
    p = nix.fails("eval", "--impure", "--expr", GATED)
    assert "'hf:nixhf/gated' is a gated model and no token was sent" in p.stderr
    assert "accept its conditions at" in p.stderr and "access-tokens" in p.stderr and "HF_TOKEN" in p.stderr


def test_gated_with_a_token_lacking_access(nix):
    p = nix.fails("eval", "--impure", "--expr", GATED, env={"HF_TOKEN": BOB_TOKEN})
    assert "the token (from HF_TOKEN) has no access" in p.stderr
    assert BOB_TOKEN not in p.stderr


def test_invalid_token_is_reported_once_without_retry_storm(nix, hub):
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/tiny").rev', env={"HF_TOKEN": "hf_wrong"})
    assert "rejected the token" in p.stderr and "(from HF_TOKEN)" in p.stderr and "hf_wrong" not in p.stderr
    assert len(hub.requests()) == 1


def host_of(url):
    return url.split("://", 1)[1]


@pytest.mark.parametrize("where", ["access-tokens", "hf-token-file", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH",
                                   "HF_HOME"])
def test_token_sources_and_no_leaks(nix, hub, tmp_path, where, standin):
    env = {}
    if where == "access-tokens":
        nix.conf["access-tokens"] = f"{host_of(standin.url)}={ALICE_TOKEN}"
        nix.write_conf()
    elif where == "hf-token-file":
        (tmp_path / "secret").write_text(ALICE_TOKEN + "\n")
        nix.conf["hf-token-file"] = str(tmp_path / "secret")
        nix.write_conf()
    elif where in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env[where] = ALICE_TOKEN
    elif where == "HF_TOKEN_PATH":
        (tmp_path / "tokenfile").write_text(ALICE_TOKEN + "\n")
        env[where] = str(tmp_path / "tokenfile")
    else:
        (tmp_path / "hfhome").mkdir()
        (tmp_path / "hfhome" / "token").write_text(ALICE_TOKEN)
        env["HF_HOME"] = str(tmp_path / "hfhome")
    d = tmp_path / "flake"
    d.mkdir()
    (d / "flake.nix").write_text('{ inputs.g = { url = "hf:nixhf/gated"; flake = false; }; '
                                 'outputs = { self, g }: { w = builtins.readFile "${g}/README.md"; }; }')
    p = nix.run("flake", "lock", "-vvvvv", cwd=str(d), env=env)
    assert nix.attr(".#w", str(d)) == "# gated\n"
    cdn = [q for q in hub.requests() if q["server"] == "cdn"]
    assert cdn and not any(q["auth"] for q in cdn), "the token went to the CDN"
    assert any(q["auth"] for q in hub.requests() if q["server"] == "hub"), "the token was not sent to the Hub"
    assert ALICE_TOKEN not in p.stderr + p.stdout, "the token appeared in -vvvvv output"
    # Not in the lock file, the store, Nix's caches or the plugin's scratch space.
    hits = subprocess.run(["grep", "-rla", ALICE_TOKEN, str(d), nix.store, nix.env["XDG_CACHE_HOME"]],
                          capture_output=True, text=True)
    assert hits.stdout == "", f"token found in: {hits.stdout}"


def test_private_repo(nix):
    p = nix.fails("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/private").rev')
    assert "model repo 'nixhf/private' was not found" in p.stderr and "or it is private and no token was sent" in p.stderr
    rev = nix.eval('(builtins.fetchTree "hf:nixhf/private").rev', env={"HF_TOKEN": ALICE_TOKEN})
    assert len(rev) == 40


@pytest.fixture
def other(tmp_path_factory):
    """Another server: a stand-in a flake's author could point nixConfig at."""
    from harness import Standin
    s = Standin(str(tmp_path_factory.mktemp("other")))
    yield s
    s.stop()


def test_a_token_goes_only_where_the_user_sent_it(nix, hub, other, tmp_path):
    """A flake whose nixConfig names another hf-endpoint, accepted as CI
    does: the user's HF_TOKEN goes to neither that server nor its CDN; the
    refusal says why and how to send one on purpose."""
    d = tmp_path / "flake"
    d.mkdir()
    (d / "flake.nix").write_text(
        '{ nixConfig.hf-endpoint = "%s";\n'
        '  inputs.m = { url = "hf:nixhf/tiny"; flake = false; };\n'
        '  inputs.g = { url = "hf:nixhf/gated"; flake = false; };\n'
        '  outputs = { self, m, g }: { }; }\n' % other.url)
    env = {"HF_TOKEN": ALICE_TOKEN}
    p = nix.fails("flake", "lock", "--accept-flake-config", cwd=str(d), env=env)
    assert other.requests(), "the flake's endpoint was not used"
    assert not any(q["auth"] for q in other.requests()), "the user's token went to the flake's server"
    assert hub.requests() == []
    host = other.url.split("://")[1]
    assert "'hf:nixhf/gated' is a gated model and no token was sent (the token from HF_TOKEN was not sent to " \
           f"{other.url}, since tokens that name no host go only to huggingface.co and to the Hub HF_ENDPOINT " \
           f"names; to use a token there, add 'access-tokens = {host}=hf_…' to nix.conf)" in p.stderr, p.stderr
    assert ALICE_TOKEN not in p.stderr
    # Sent on purpose: an access-tokens entry for that host.
    other.clear_log()
    nix.conf["access-tokens"] = f"{host}={ALICE_TOKEN}"
    nix.write_conf()
    nix.run("flake", "lock", "--accept-flake-config", cwd=str(d), env=env)
    assert any(q["auth"] for q in other.requests() if q["server"] == "hub")
    assert not any(q["auth"] for q in other.requests() if q["server"] == "cdn")


def test_an_unreadable_token_file_is_explained_when_the_hub_refuses(nix, tmp_path):
    nix.conf["hf-token-file"] = str(tmp_path / "no-such-secret")
    nix.write_conf()
    assert len(nix.eval('(builtins.fetchTree "hf:nixhf/tiny").rev')) == 40, "public repos need no token"
    p = nix.fails("eval", "--impure", "--expr", GATED)
    assert f"no token was sent (the token file {tmp_path}/no-such-secret (hf-token-file) cannot be read by " in p.stderr
