"""Xet behind the stand-in: Hugging Face's own local CAS server
(`local_cas_server` from the `xet-client` crate, feature `simulation`), run
as a child process, filled with the Xet-backed fixtures by the official
client (`hf_xet`), so chunks, xorbs and shards are exactly what Hugging
Face makes. Clients never talk to it directly: the stand-in's "cas" origin
stands in front of it (tokens, signed fetch URLs, faults, the log), as the
Hub's CAS service does. See ../../shared/notes/hub-protocol.md (Xet)."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

# The version dev/prepare installs; the tests say which one they ran.
VERSION = "1.8.0"


def default_binary():
    root = os.environ.get("NIX_HF_XET_CAS_ROOT", os.path.expanduser(f"~/.cache/nix-hf/xet-cas-{VERSION}"))
    return os.path.join(root, "bin", "local_cas_server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCas:
    """A running local_cas_server with its data in a temporary folder."""

    def __init__(self, binary):
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"standin: error: no Xet CAS server at {binary}; dev/prepare installs it "
                             f"(cargo install xet-client@{VERSION} --features simulation --bin local_cas_server)")
        self.dir = tempfile.mkdtemp(prefix="standin-xet-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--data-directory", os.path.join(self.dir, "data"), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="warn"))
        # Ready when it answers; it gets no more than that to come up.
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"standin: error: the Xet CAS server did not start (log in {self.dir})")
                time.sleep(0.05)

    def upload(self, blobs):
        """Uploads the blobs as files, as the official client does (from
        disk where they are files); returns their Xet hashes."""
        import warnings

        import hf_xet  # the official client's own uploader

        paths = [getattr(b, "path", None) for b in blobs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if all(paths):
                infos = hf_xet.upload_files(paths, self.url, None, None, None, "model")
            else:
                infos = hf_xet.upload_bytes([b.read_all() for b in blobs], self.url, None, None, None, "model")
        for blob, info in zip(blobs, infos):
            assert info.sha256 == blob.sha256(), "hf_xet stored other bytes"
        return [info.hash for info in infos]

    def stored_bytes(self):
        """What the CAS holds on disk (xorbs and shards)."""
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(self.dir, "data"))
                   for f in fs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Tokens:
    """Xet read tokens as the Hub issues them: for one repo, until `exp`
    (seconds since the epoch), signed so the CAS origin can check them."""

    def __init__(self, secret):
        self.secret = secret

    def issue(self, kind, repo_id, ttl):
        exp = int(time.time() + ttl)
        body = base64.urlsafe_b64encode(json.dumps({"repo": f"{kind}:{repo_id}", "exp": exp}).encode()).decode()
        return f"xet_{body}.{self.sign(body)}", exp

    def sign(self, body):
        return hmac.new(self.secret, b"xet\n" + body.encode(), hashlib.sha256).hexdigest()[:32]

    def check(self, token):
        """(repo, exp) of a token this stand-in issued, or None."""
        if not token.startswith("xet_") or "." not in token:
            return None
        body, _, sig = token[4:].rpartition(".")
        if not hmac.compare_digest(sig, self.sign(body)):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(body))
            return claims["repo"], claims["exp"]
        except (ValueError, KeyError):
            return None
