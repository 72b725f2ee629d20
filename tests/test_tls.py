"""https: certificates are verified by default, and the CA file Nix is told
about (ssl-cert-file, NIX_SSL_CERT_FILE, SSL_CERT_FILE) is the one trusted."""

import pytest

from harness import Nix, Standin


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    import trustme
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    s = Standin(str(d), ["--tls-cert", str(d / "server.pem")])
    assert s.url.startswith("https://")
    yield s, str(d / "ca.pem")
    s.stop()


EXPR = '(builtins.fetchTree "hf:nixhf/tiny").rev'


def test_unknown_certificates_are_refused(tls, tmp_path):
    s, _ = tls
    nix = Nix(str(tmp_path), s.url)
    p = nix.fails("eval", "--impure", "--expr", EXPR, "--option", "hf-retries", "1")
    assert "cannot reach the Hugging Face Hub at https://127.0.0.1" in p.stderr
    assert "certificate" in p.stderr.lower(), p.stderr


@pytest.mark.parametrize("how", ["NIX_SSL_CERT_FILE", "SSL_CERT_FILE", "ssl-cert-file"])
def test_the_ca_file_nix_is_given_is_trusted(tls, tmp_path, how, expected):
    s, ca = tls
    nix = Nix(str(tmp_path), s.url)
    if how == "ssl-cert-file":
        nix.conf["ssl-cert-file"] = ca
        nix.write_conf()
        env = {}
    else:
        env = {how: ca}
    rev = nix.eval(EXPR, env=env)
    assert rev == expected[("model", "nixhf/tiny")].resolve("main").sha
    # LFS files come from the CDN origin, over https too.
    assert any(q["server"] == "cdn" for q in s.requests())
