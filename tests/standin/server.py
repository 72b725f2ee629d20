"""A local stand-in for the Hugging Face Hub: the API, /resolve with the Hub's
redirects, a separate "CDN" origin for LFS files with signed expiring URLs,
every repo over git's smart HTTP protocol (real repositories, through `git
http-backend`), the Hub's error codes and access rules, and switches that
make it misbehave the way real networks and servers do (and a latency
before every answer, as of a far Hub). See ../../shared/notes/hub-protocol.md."""

import base64
import fnmatch
import hashlib
import hmac
import http.client
import json
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import fixtures, git, xet
from .blobs import Blob, BytesBlob
from .repos import Entry

API_VERBS = {"revision", "tree", "paths-info", "refs", "commits", "preupload", "commit", "xet-read-token"}
KIND_PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space"}


class Streamed(Blob):
    """An answer from elsewhere, passed on as it arrives (once, in order)."""

    def __init__(self, response, size):
        self.response, self.size = response, size

    def chunks(self, start, end, chunk=1 << 20):
        left = end - start
        while left > 0:
            data = self.response.read(min(chunk, left))
            if not data:
                raise Dropped
            left -= len(data)
            yield data


class Dropped(Exception):
    """The response was cut off on purpose (a fault switch)."""


class Hub:
    """Everything both origins share: repos, tokens, settings, faults, log."""

    def __init__(self, repos, tokens):
        self.repos = repos
        self.tokens = tokens
        self.lock = threading.Lock()
        self.secret = random.randbytes(16)
        # latency: seconds before every answer; git: whether repos are
        # served over git too.
        # xet_token_ttl: seconds a Xet read token is valid (the client
        # refreshes it 30 s before); xet: whether Xet-backed files say so
        # (off: served as plain LFS files, as before a repo's migration).
        # link_rate: bytes/s that all CDN answers share, as a user's own
        # link would cap them (cdn_rate caps each connection, as the CDN).
        self.settings = {"url_ttl": 3600, "cdn_rate": 0, "link_rate": 0, "page_size": 1000, "latency": 0,
                         "git": True, "xet_token_ttl": 3600, "xet": True}
        # When the shared link is next free (time.monotonic()).
        self.link_free = 0.0
        self.git_root = tempfile.TemporaryDirectory(prefix="standin-git-")
        self.git = git.Repositories(self.git_root.name)
        self.faults = []
        self.log = []
        # Bumped by each clear of the log: a request is logged only if no
        # clear came since it began, so that one a killed client left
        # behind cannot count towards what a test measures next.
        self.log_epoch = 0
        self.log_file = None
        self.lfs_blobs = {}  # sha256 -> blob, filled as LFS files are resolved
        self.hub_url = self.cdn_url = self.cas_url = None
        # Hugging Face's CAS behind the "cas" origin, and which repo holds
        # which Xet file ("kind:id" -> hashes): a token reads only its repo's.
        self.cas = None
        self.xet_tokens = xet.Tokens(self.secret)
        self.xet_files = {}
        self.xet_added = {}  # commit -> bytes its upload added to the CAS
        self.xet_blobs = None  # where big Xet fixtures are written

    def start_xet(self, binary):
        """Starts the CAS and uploads every LFS file of the Xet-backed repos,
        commit after commit as a user pushes them, so that each commit's
        upload is deduplicated against the chunks already there."""
        self.cas = xet.LocalCas(binary)
        hashes = {}
        for r in self.repos.values():
            for c in (r.commits.values() if r.xet else ()):  # in the order they were made
                new = {}
                for e in c.files.values():
                    if e.lfs and e.blob.sha256() not in hashes:
                        new.setdefault(e.blob.sha256(), e.blob)
                if new:
                    before = self.cas.stored_bytes()
                    hashes.update(zip(new, self.cas.upload(list(new.values()))))
                    # What this commit added to the CAS: the floor of a re-lock.
                    self.xet_added[c.sha] = self.cas.stored_bytes() - before
                for e in c.files.values():
                    if e.lfs:
                        e.xet = hashes[e.blob.sha256()]
                        self.xet_files.setdefault(f"{r.kind}:{r.id}", set()).add(e.xet)

    def xet_entry(self, entry):
        return entry.xet if entry.xet and self.cas and self.settings["xet"] else None

    # -- fault switches -------------------------------------------------
    def take_fault(self, kind, where, path, applies=lambda f: True):
        """Returns the first matching armed fault of `kind` for which `applies`
        holds, using up one of its `count` (absent or negative: unlimited)."""
        with self.lock:
            for f in self.faults:
                if f.get("kind") != kind or f.get("count", -1) == 0:
                    continue
                if f.get("where", "any") not in ("any", where):
                    continue
                if not fnmatch.fnmatchcase(path, f.get("match", "*")) or not applies(f):
                    continue
                if f.get("count", -1) > 0:
                    f["count"] -= 1
                f["hits"] = f.get("hits", 0) + 1
                return dict(f)
        return None

    def record(self, entry, epoch):
        with self.lock:
            if epoch == self.log_epoch:
                self.log.append(entry)
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()

    # -- signed CDN URLs -------------------------------------------------
    def sign(self, sha, name, expires):
        msg = f"{sha}\n{name}\n{expires}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()[:32]

    def cdn_location(self, entry):
        sha = entry.blob.sha256()
        self.lfs_blobs[sha] = entry.blob
        name = entry.path.rsplit("/", 1)[-1]
        expires = int(time.time() + self.settings["url_ttl"])
        q = urllib.parse.urlencode({"expires": expires, "sig": self.sign(sha, name, expires)})
        return f"{self.cdn_url}/lfs/{sha}/{urllib.parse.quote(name)}?{q}"

    def find(self, kind, repo_id):
        return self.repos.get((kind, repo_id.lower()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub-standin/1"
    # Headers and body go out in separate writes: with Nagle on, every small
    # answer would wait for the client's delayed ACK (~40 ms), which no real
    # Hub does.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    # -- plumbing ----------------------------------------------------------
    @property
    def hub(self):
        return self.server.hub

    def do_GET(self):
        self.handle_request(body=True)

    def do_HEAD(self):
        self.handle_request(body=False)

    do_POST = do_PUT = do_DELETE = do_GET

    def handle_request(self, body):
        raw_path, _, query = self.path.partition("?")
        self.query = urllib.parse.parse_qs(query)
        self.want_body = body
        self.status_sent = None
        self.bytes_sent = 0
        epoch, began = self.hub.log_epoch, time.time()
        admin = raw_path.startswith("/_standin/")
        if not admin and self.hub.settings["latency"]:
            time.sleep(self.hub.settings["latency"])  # a far Hub, on purpose
        try:
            if admin and self.server.role == "hub":
                self.admin(raw_path)
            elif self.server.role == "cdn":
                self.cdn(raw_path)
            elif self.server.role == "cas":
                self.cas(raw_path)
            else:
                self.hub_route(raw_path)
        except Dropped:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if not admin:
                self.hub.record({
                    "server": self.server.role, "method": self.command, "path": self.path,
                    "status": self.status_sent, "auth": "Authorization" in self.headers,
                    "range": self.headers.get("Range"), "bytes": self.bytes_sent, "began": began,
                    "time": time.time(),
                }, epoch)

    def reply(self, status, headers=(), payload=b""):
        self.status_sent = status
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.want_body and self.command != "HEAD" and payload:
            self.wfile.write(payload)
            self.bytes_sent += len(payload)

    def reply_json(self, obj, status=200, headers=()):
        self.reply(status, [("Content-Type", "application/json; charset=utf-8"), *headers], json.dumps(obj).encode())

    def error(self, status, code, message, headers=()):
        h = [("X-Error-Message", message), *headers]
        if code:
            h.append(("X-Error-Code", code))
        self.reply_json({"error": message}, status, h)

    def hang_up_if_told(self, where, path):
        """The `hangup` fault: an unreachable server, as a client sees it (no
        answer at all)."""
        if self.hub.take_fault("hangup", where, path):
            self.connection.shutdown(socket.SHUT_RDWR)
            raise Dropped

    def injected_status(self, where, path):
        f = self.hub.take_fault("status", where, path)
        if not f:
            return False
        headers = []
        if f.get("retry_after") is not None:
            headers.append(("Retry-After", str(f["retry_after"])))
        if f["status"] == 429:
            headers.append(("RateLimit", f'"resolvers";r=0;t={f.get("retry_after", 1)}'))
        self.error(f["status"], None, f.get("message", "injected failure"), headers)
        return True

    # -- auth --------------------------------------------------------------
    def user(self):
        """The user behind the Authorization header; None when anonymous.
        Raises PermissionError for a token the Hub does not know."""
        h = self.headers.get("Authorization")
        if h is None:
            return None
        scheme, _, token = h.partition(" ")
        if scheme.lower() == "basic":
            # git's way: the token is the password, whatever the user name.
            try:
                token = base64.b64decode(token).decode().partition(":")[2]
            except ValueError:
                token = ""
        user = self.hub.tokens.get(token) if scheme.lower() in ("bearer", "basic") else None
        if user is None:
            raise PermissionError
        return user

    def check_access(self, repo, kind, repo_id, user, download):
        """Applies the Hub's 401/403/404 rules; replies and returns False when
        access is refused."""
        if repo is None or (repo.private and user not in repo.readers):
            msg = "Repository not found"
            self.error(401 if user is None else 404, "RepoNotFound", msg)
            return False
        if download and repo.gated and user not in repo.approved:
            if user is None:
                self.error(401, "GatedRepo", f"Access to {kind} {repo.id} is restricted. You must have access to "
                                             "it and be authenticated to access it. Please log in.")
            else:
                self.error(403, "GatedRepo", f"Access to {kind} {repo.id} is restricted and you are not in the "
                                             f"authorized list. Visit {self.hub.hub_url}/{repo.id} to ask for access.")
            return False
        return True

    # -- hub routes ----------------------------------------------------------
    def hub_route(self, raw_path):
        segs = raw_path.split("/")[1:]
        if len(segs) >= 2 and segs[0] == "api" and segs[1] == "resolve-cache":
            return self.resolve_cache(segs[2:])
        is_git = raw_path.endswith(("/info/refs", "/git-upload-pack"))
        where = "api" if segs and segs[0] == "api" else "git" if is_git else "resolve"
        self.hang_up_if_told(where, urllib.parse.unquote(raw_path))
        if self.injected_status(where, urllib.parse.unquote(raw_path)):
            return
        try:
            user = self.user()
        except PermissionError:
            return self.error(401, None, "Invalid credentials in Authorization header")
        if len(segs) >= 3 and segs[0] == "api" and segs[1] in KIND_PLURALS:
            return self.api(KIND_PLURALS[segs[1]], segs[2:], user)
        kind = "model"
        if segs and segs[0] in KIND_PLURALS and segs[0] != "models":
            kind = KIND_PLURALS[segs[0]]
            segs = segs[1:]
        if is_git:
            # {repo}.git/… or {repo}/…, as git clone URLs are written.
            rest = 2 if segs[-1] == "refs" else 1
            repo_id = "/".join(segs[:-rest])
            return self.git(kind, repo_id.removesuffix(".git"), "/".join(segs[-rest:]), user)
        if len(segs) >= 3 and segs[1] == "resolve":
            return self.resolve(kind, segs[0], segs[2:], user)
        if len(segs) >= 4 and segs[2] == "resolve":
            return self.resolve(kind, "/".join(segs[:2]), segs[3:], user)
        self.error(404, None, "Not Found")

    def api(self, kind, rest, user):
        if len(rest) == 1 or (len(rest) >= 2 and rest[1] in API_VERBS):
            repo_id, rest = rest[0], rest[1:]
        else:
            repo_id, rest = "/".join(rest[:2]), rest[2:]
        repo_id = urllib.parse.unquote(repo_id)
        repo = self.hub.find(kind, repo_id)
        if not self.check_access(repo, kind, repo_id, user, download=False):
            return
        if not rest:
            return self.info(repo, "main")
        if rest[0] == "revision" and len(rest) == 2:
            return self.info(repo, urllib.parse.unquote(rest[1]))
        if rest[0] == "tree" and len(rest) >= 2:
            return self.tree(repo, urllib.parse.unquote(rest[1]), urllib.parse.unquote("/".join(rest[2:])))
        if rest[0] == "xet-read-token" and len(rest) == 2:
            return self.xet_read_token(repo, kind, repo_id, urllib.parse.unquote(rest[1]), user)
        self.error(404, None, "Not Found")

    def xet_read_token(self, repo, kind, repo_id, rev, user):
        """A token for the CAS, under the rules of a download; in the body
        (what hf_xet reads) and in headers (what huggingface_hub reads)."""
        if not self.check_access(repo, kind, repo_id, user, download=True):
            return
        if self.commit_or_404(repo, rev) is None:
            return
        if not self.hub.cas or not self.hub.settings["xet"]:
            return self.error(404, None, "This repository is not backed by Xet")
        token, exp = self.hub.xet_tokens.issue(kind, repo.id, self.hub.settings["xet_token_ttl"])
        self.reply_json({"accessToken": token, "exp": exp, "casUrl": self.hub.cas_url},
                        headers=[("X-Xet-Cas-Url", self.hub.cas_url), ("X-Xet-Access-Token", token),
                                 ("X-Xet-Token-Expiration", str(exp))])

    def commit_or_404(self, repo, rev):
        c = repo.resolve(rev)
        if c is None:
            self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return c

    def info(self, repo, rev):
        c = self.commit_or_404(repo, rev)
        if c is None:
            return
        body = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.id.split("/")[0] if "/" in repo.id else None,
            "sha": c.sha,
            "lastModified": c.date_iso(),
            "createdAt": "2024-01-01T00:00:00.000Z",
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": p} for p in sorted(c.files)],
        }
        if repo.kind == "model":
            body["modelId"] = repo.id
        if repo.kind == "space":
            body["sdk"] = "gradio"
        self.reply_json(body)

    def tree(self, repo, rev, directory):
        c = self.commit_or_404(repo, rev)
        if c is None:
            return
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        directory = directory.strip("/")
        dirs = c.directories()
        if directory and directory not in dirs:
            return self.error(404, "EntryNotFound", f"{directory} does not exist on \"{rev}\"",
                              [("X-Repo-Commit", c.sha)])
        prefix = directory + "/" if directory else ""

        def wanted(path):
            if not path.startswith(prefix):
                return False
            return recursive or "/" not in path[len(prefix):]

        entries = [c.files[p].listing() if self.hub.xet_entry(c.files[p]) else c.files[p].git_listing()
                   for p in c.files if wanted(p)]
        # Fault switch: a lying listing (hostile paths, duplicates, ...).
        injected = self.hub.take_fault("listing", "api", repo.id)
        if injected:
            entries += injected.get("entries", [])
        entries += [{"type": "directory", "oid": c.dir_oid(d), "size": 0, "path": d} for d in dirs if wanted(d)]
        # The Hub promises no order: serve a shuffled one, stable across pages.
        entries.sort(key=lambda e: e["path"])
        random.Random(f"{c.sha}/{directory}/{recursive}").shuffle(entries)
        start = 0
        if "cursor" in self.query:
            start = int(base64.urlsafe_b64decode(self.query["cursor"][0]).decode())
        size = self.hub.settings["page_size"]
        page = entries[start:start + size]
        headers = []
        if start + size < len(entries):
            q = dict((k, v[0]) for k, v in self.query.items())
            q["cursor"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            path = self.path.partition("?")[0]
            headers.append(("Link", f'<{self.hub.hub_url}{path}?{urllib.parse.urlencode(q)}>; rel="next"'))
        self.reply_json(page, headers=headers)

    def resolve(self, kind, repo_id, rest, user):
        repo_id = urllib.parse.unquote(repo_id)
        repo = self.hub.find(kind, repo_id)
        if not self.check_access(repo, kind, repo_id, user, download=True):
            return
        rev = urllib.parse.unquote(rest[0])
        path = urllib.parse.unquote("/".join(rest[1:]))
        c = self.commit_or_404(repo, rev)
        if c is None:
            return
        entry = c.files.get(path)
        if entry is None:
            return self.error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"",
                              [("X-Repo-Commit", c.sha)])
        common = [("X-Repo-Commit", c.sha), ("ETag", f'"{entry.etag()}"'), ("Accept-Ranges", "bytes")]
        if entry.lfs:
            # A Xet-backed file names its Xet hash and where to get a token;
            # the redirect (the LFS bridge) still serves it whole.
            xet_hash = self.hub.xet_entry(entry)
            if xet_hash:
                plural = kind + "s"
                token_url = f"{self.hub.hub_url}/api/{plural}/{repo.id}/xet-read-token/{c.sha}"
                common += [("X-Xet-Hash", xet_hash),
                           ("Link", f'<{token_url}>; rel="xet-auth", '
                                    f'<{self.hub.cas_url}/v1/reconstructions/{xet_hash}>; rel="xet-reconstruction-info"')]
            self.reply(302, [("Location", self.hub.cdn_location(entry)), ("X-Linked-Size", str(entry.blob.size)),
                             ("X-Linked-Etag", f'"{entry.blob.sha256()}"'), *common])
        else:
            quoted = urllib.parse.quote(path)
            plural = kind + "s"
            # As the Hub writes it: the query names the file again, and its etag.
            again = urllib.parse.quote(f"/{repo.id}/resolve/{rev}/{path}", safe="")
            query = f"{again}=&etag={urllib.parse.quote(chr(34) + entry.etag() + chr(34))}"
            self.reply(307, [("Location", f"/api/resolve-cache/{plural}/{repo.id}/{c.sha}/{quoted}?{query}"),
                             *common])

    def git(self, kind, repo_id, rest, user):
        """{repo}.git/info/refs and {repo}.git/git-upload-pack, as the Hub
        serves them (the token as the password, the same access rules as
        /resolve), answered by git itself."""
        repo_id = urllib.parse.unquote(repo_id)
        repo = self.hub.find(kind, repo_id)
        if not self.hub.settings["git"]:
            return self.error(404, None, "Not Found")
        if not self.check_access(repo, kind, repo_id, user, download=True):
            return
        if rest not in ("info/refs", "git-upload-pack"):
            return self.error(404, None, "Not Found")
        name = f"{repo.id}.git/{rest}"
        corrupt = self.hub.take_fault("git_corrupt", "git", name)
        root = self.hub.git.root if corrupt is None else os.path.join(self.hub.git.root, "corrupt")
        self.hub.git.path(repo, corrupt=None if corrupt is None else corrupt.get("file", "*"))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, out = git.http_backend(
            root, f"/{repo.kind}s/{repo.id}.git/{rest}", self.command, urllib.parse.urlencode(
                {k: v[0] for k, v in self.query.items()}), self.headers.get("Content-Type"),
            self.headers.get("Git-Protocol"), body, self.headers.get("Content-Encoding"))
        if status != 200:
            return self.reply(status, headers, out)
        self.send_blob(BytesBlob(out), name, "git", [h for h in headers if h[0].lower() != "content-length"])

    def resolve_cache(self, segs):
        """Where /resolve sends regular files: /api/resolve-cache/{kind}s/{id}/{commit}/{path}."""
        if not segs or segs[0] not in KIND_PLURALS:
            return self.error(404, None, "Not Found")
        kind = KIND_PLURALS[segs[0]]
        idx = next((i for i, s in enumerate(segs[1:], 1) if len(s) == 40 and all(ch in "0123456789abcdef" for ch in s)), None)
        if idx is None:
            return self.error(404, None, "Not Found")
        repo = self.hub.find(kind, urllib.parse.unquote("/".join(segs[1:idx])))
        path = urllib.parse.unquote("/".join(segs[idx + 1:]))
        if self.injected_status("resolve", path):
            return
        try:
            user = self.user()
        except PermissionError:
            return self.error(401, None, "Invalid credentials in Authorization header")
        if not self.check_access(repo, kind, "", user, download=True):
            return
        c = repo.commits.get(segs[idx])
        entry = c.files.get(path) if c else None
        if entry is None or entry.lfs:
            return self.error(404, "EntryNotFound", f"{path} does not exist")
        self.send_blob(entry.blob, path, "resolve", [("ETag", f'"{entry.etag()}"'), ("X-Repo-Commit", c.sha)])

    # -- CDN -------------------------------------------------------------------
    def cdn(self, raw_path):
        segs = raw_path.split("/")[1:]
        if len(segs) != 3 or segs[0] != "lfs":
            return self.reply(404, [("Content-Type", "text/plain")], b"NoSuchKey")
        sha, name = segs[1], urllib.parse.unquote(segs[2])
        if "Authorization" in self.headers:
            return self.reply(400, [("Content-Type", "application/xml")],
                              b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
                              b"</Message></Error>")
        if self.injected_status("cdn", name):
            return
        try:
            expires = int(self.query["expires"][0])
            sig = self.query["sig"][0]
        except (KeyError, ValueError):
            return self.reply(403, [("Content-Type", "application/xml")], b"<Error><Code>AccessDenied</Code></Error>")
        expired = expires < time.time() or self.hub.take_fault("expired", "cdn", name)
        if not hmac.compare_digest(sig, self.hub.sign(sha, name, expires)) or expired:
            return self.reply(403, [("Content-Type", "application/xml")],
                              b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
        blob = self.hub.lfs_blobs.get(sha)
        if blob is None:
            return self.reply(404, [("Content-Type", "text/plain")], b"NoSuchKey")
        self.send_blob(blob, name, "cdn", [("ETag", f'"{sha}"'), ("Content-Type", "application/octet-stream")])

    # -- Xet CAS ---------------------------------------------------------------
    def cas(self, raw_path):
        """The CAS as the Hub runs it, in front of Hugging Face's local one:
        reconstructions need a token for the file's repo; the fetch URLs in
        them are signed and expire (url_ttl), as the real ones do."""
        segs = raw_path.split("/")[1:]
        if self.command == "POST" and raw_path.endswith("/telemetry"):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return self.reply_json({})
        if len(segs) == 3 and segs[0] in ("v1", "v2") and segs[1] == "reconstructions" and self.command == "GET":
            return self.reconstruction(raw_path, segs[2])
        if segs == ["v1", "fetch_term"] and self.command == "GET":
            return self.fetch_term(raw_path)
        self.error(404, None, "Not Found")

    def reconstruction(self, raw_path, file_hash):
        """Faults apply to the path (`match`: "/v2/*", say)."""
        self.hang_up_if_told("cas", raw_path)
        if self.injected_status("cas", raw_path):
            return
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        claims = self.hub.xet_tokens.check(token) if scheme.lower() == "bearer" else None
        if claims is None or claims[1] <= time.time() or self.hub.take_fault("expired", "cas", raw_path):
            return self.error(401, None, "Invalid or expired Xet token")
        if file_hash not in self.hub.xet_files.get(claims[0], ()):
            return self.error(404, None, "File not found")
        status, headers, body = self.upstream(raw_path, {"Range": self.headers.get("Range")})
        if status == 200:
            answer = json.loads(body)
            for fetches in (answer.get("xorbs") or {}).values():
                for f in fetches:
                    f["url"] = self.signed(f["url"], [(r["bytes"]["start"], r["bytes"]["end"]) for r in f["ranges"]])
            for fetches in (answer.get("fetch_info") or {}).values():
                for f in fetches:
                    f["url"] = self.signed(f["url"], [(f["url_range"]["start"], f["url_range"]["end"])])
            # Fault switch: a lying reconstruction (fields replaced).
            answer.update((self.hub.take_fault("reconstruction", "cas", raw_path) or {}).get("set", {}))
            return self.reply_json(answer)
        self.reply(status, [(k, v) for k, v in headers if k.lower() == "content-type"], body)

    def signed(self, url, ranges):
        """The URL on this origin, for exactly these byte ranges (inclusive),
        as the CAS's signed URLs are (X-Xet-Signed-Range)."""
        expires = int(time.time() + self.hub.settings["url_ttl"])
        term = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["term"][0]
        signed = ",".join(f"{a}-{b}" for a, b in ranges)
        q = urllib.parse.urlencode({"term": term, "ranges": signed, "expires": expires,
                                    "sig": self.hub.sign(term + "/" + signed, "xet", expires)})
        return f"{self.hub.cas_url}/v1/fetch_term?{q}"

    def fetch_term(self, raw_path):
        """A xorb range; faults apply to the xorb's hash (`match`)."""
        try:
            term, signed, expires, sig = (self.query[k][0] for k in ("term", "ranges", "expires", "sig"))
            expires = int(expires)
            xorb = base64.urlsafe_b64decode(term + "=" * (-len(term) % 4)).decode().partition(":")[0]
        except (KeyError, ValueError):
            return self.reply(403, [("Content-Type", "application/xml")], b"<Error><Code>AccessDenied</Code></Error>")
        if "Authorization" in self.headers:
            return self.reply(400, [("Content-Type", "application/xml")],
                              b"<Error><Code>InvalidArgument</Code></Error>")
        expired = expires < time.time() or self.hub.take_fault("expired", "xorb", xorb)
        # Only a range the URL is signed for, as the real one allows.
        asked = (self.headers.get("Range") or "").removeprefix("bytes=")
        if not hmac.compare_digest(sig, self.hub.sign(term + "/" + signed, "xet", expires)) or expired \
                or asked not in signed.split(","):
            return self.reply(403, [("Content-Type", "application/xml")],
                              b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
        if self.injected_status("xorb", xorb):
            return
        self.hang_up_if_told("xorb", xorb)
        conn, r = self.upstream_open(f"/v1/fetch_term?term={term}", {"Range": self.headers.get("Range")})
        try:
            size = int(r.getheader("Content-Length") or 0)
            self.send_blob(Streamed(r, size), xorb, "xorb", [(k, v) for k, v in r.getheaders()
                                                             if k.lower() == "content-type"],
                           status=r.status, content_range=r.getheader("Content-Range"))
        finally:
            conn.close()

    def upstream_open(self, path, headers):
        """Asks the local CAS, as if on this origin (the URLs it writes name
        the Host it was asked on): the connection and its answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.hub.cas.port, timeout=60)
        h = {"Host": urllib.parse.urlsplit(self.hub.cas_url).netloc}
        h.update((k, v) for k, v in headers.items() if v)
        conn.request("GET", path, headers=h)
        return conn, conn.getresponse()

    def upstream(self, path, headers):
        conn, r = self.upstream_open(path, headers)
        try:
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    # -- content with ranges and faults ------------------------------------------
    def parse_range(self, header, total):
        """(start, end) for a single `bytes=` range, "unsatisfiable", or None to
        serve everything (absent or unparseable header, as servers do)."""
        if not header or not header.startswith("bytes=") or "," in header:
            return None
        a, _, b = header[6:].strip().partition("-")
        try:
            if a == "":
                n = int(b)
                return (max(0, total - n), total) if n > 0 else "unsatisfiable"
            start = int(a)
            end = min(total, int(b) + 1) if b else total
        except ValueError:
            return None
        if start >= total:
            return "unsatisfiable"
        if end <= start:
            return None
        return start, end

    def send_blob(self, blob, name, where, headers, status=None, content_range=None):
        """Serves `blob` (honouring Range), or, given the `status` and
        `content_range` of an answer made elsewhere, exactly that; with the
        drop, stall and corrupt faults either way."""
        total = blob.size
        start, end = 0, total
        rng = self.headers.get("Range")
        if status is not None:
            headers = [*headers, ("Content-Range", content_range)] if content_range else headers
        elif rng and not self.hub.take_fault("ignore_range", where, name):
            r = self.parse_range(rng, total)
            if r == "unsatisfiable":
                return self.reply(416, [("Content-Range", f"bytes */{total}"), *headers])
            if r:
                (start, end), status = r, 206
        status = status or 200
        self.status_sent = status
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206 and not content_range:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{total}")
        self.end_headers()
        if not self.want_body or self.command == "HEAD":
            return
        drop = self.hub.take_fault("drop", where, name)
        stall = self.hub.take_fault("stall", where, name)
        # Only a response that carries the byte to corrupt uses the fault up.
        corrupt = self.hub.take_fault("corrupt", where, name,
                                      lambda f: start <= f.get("at", total // 2) < end)
        rate = self.hub.settings["cdn_rate"] if where == "cdn" else 0
        link = self.hub.settings["link_rate"] if where == "cdn" else 0
        chunk = min([1 << 20, *(max(16384, r // 50) for r in (rate, link) if r)])
        t0 = time.monotonic()
        off = start
        for piece in blob.chunks(start, end, chunk):
            n = len(piece)
            if corrupt:
                at = corrupt.get("at", total // 2)
                if off <= at < off + n:
                    piece = bytearray(piece)
                    piece[at - off] ^= 0xFF
            for fault, act in ((drop, "drop"), (stall, "stall")):
                if fault and self.bytes_sent + n > fault.get("after", 0):
                    keep = max(0, fault.get("after", 0) - self.bytes_sent)
                    self.wfile.write(piece[:keep])
                    self.bytes_sent += keep
                    if act == "stall":
                        time.sleep(fault.get("seconds", 3600))
                    self.connection.shutdown(socket.SHUT_RDWR)
                    raise Dropped
            if link:
                # Each chunk takes its turn on the link, as packets would.
                with self.hub.lock:
                    slot = max(time.monotonic(), self.hub.link_free)
                    self.hub.link_free = slot + n / link
                time.sleep(max(0.0, slot - time.monotonic()))
            self.wfile.write(piece)
            self.bytes_sent += n
            off += n
            if rate:
                ahead = t0 + self.bytes_sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    # -- admin -------------------------------------------------------------------
    def admin(self, raw_path):
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"null") if length else None
        what = raw_path[len("/_standin/"):]
        hub = self.hub
        if what == "info":
            return self.reply_json({"hub": hub.hub_url, "cdn": hub.cdn_url, "cas": hub.cas_url, "tokens": hub.tokens,
                                    "repos": sorted(f"{k}:{r.id}" for (k, _), r in hub.repos.items()),
                                    "xet_added": hub.xet_added})
        if what == "faults":
            with hub.lock:
                if self.command in ("POST", "PUT"):
                    hub.faults = list(data or [])
                elif self.command == "DELETE":
                    hub.faults = []
                return self.reply_json(hub.faults)
        if what == "settings":
            with hub.lock:
                if self.command in ("POST", "PUT"):
                    hub.settings.update(data or {})
                return self.reply_json(hub.settings)
        if what == "log":
            with hub.lock:
                if self.command == "DELETE":
                    hub.log = []
                    hub.log_epoch += 1
                return self.reply_json(hub.log)
        if what == "commit" and self.command == "POST":
            repo = hub.find(data.get("kind", "model"), data["repo"])
            if repo is None:
                return self.error(404, None, "no such repo")
            changes = {p: (None if t is None else Entry(p, BytesBlob(t.encode()))) for p, t in data["files"].items()}
            with hub.lock:
                c = repo.commit(data.get("branch", "main"), changes, data.get("message", "update"))
            return self.reply_json({"sha": c.sha, "lastModified": c.date_iso()})
        self.error(404, None, "unknown admin call")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, role, hub):
        super().__init__(addr, Handler)
        self.role = role
        self.hub = hub

    def handle_error(self, request, client_address):
        # Clients hang up mid-transfer all the time (that is what the fault
        # tests are about); a traceback per hang-up would bury real errors.
        pass


def start(host="127.0.0.1", port=0, cdn_port=0, synthetic=(), minilm=None, hash_cache=None, log_file=None,
          tls_cert=None, small_files=(), xet_cas=None, xet_synthetic=()):
    """Serves the three origins (Hub, CDN, Xet CAS); with `tls_cert` (a PEM
    file holding the key and the certificate chain) over https, as the real
    ones are. With `xet_cas` (the local_cas_server binary) the Xet-backed
    repos are in Xet; without, their files are plain LFS files."""
    folder = tempfile.mkdtemp(prefix="standin-xet-blobs-")
    hub = Hub(fixtures.build(hash_cache, synthetic, minilm, small_files, xet_synthetic, folder), dict(fixtures.TOKENS))
    hub.xet_blobs = folder
    servers = [Server((host, port), "hub", hub), Server((host, cdn_port), "cdn", hub), Server((host, 0), "cas", hub)]
    scheme = "http"
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_cert)
        for s in servers:
            s.socket = ctx.wrap_socket(s.socket, server_side=True)
        scheme = "https"
    hub.hub_url, hub.cdn_url, hub.cas_url = (f"{scheme}://{host}:{s.server_address[1]}" for s in servers)
    if xet_cas:
        hub.start_xet(xet_cas)
    if log_file:
        hub.log_file = open(log_file, "a")
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    return hub, servers
