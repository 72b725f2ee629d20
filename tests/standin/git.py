"""The stand-in's repos as real git repositories, as the Hub keeps them:
commits whose ids are the ones the API reports, LFS files as their pointer
blobs. Objects are computed here (a commit id needs no repository); the
bare repositories `git http-backend` serves are written on demand."""

import fnmatch
import hashlib
import os
import subprocess
import threading
import zlib

from .blobs import lfs_pointer

IDENT = "Stand-in <{}@standin.invalid>"


def object_id(kind, data):
    return hashlib.sha1(b"%s %d\0" % (kind.encode(), len(data)) + data).hexdigest()


def blob_data(entry):
    """What git holds for a file: its bytes, or the LFS pointer."""
    return lfs_pointer(entry.blob) if entry.lfs else entry.blob.read_all()


def trees(files):
    """The tree objects of {path: blob oid}: {oid: data}, and the root's oid."""
    objects = {}

    def build(entries):
        # entries: {name: oid (a file) or dict (a directory)}
        rows = []
        for name, v in entries.items():
            if isinstance(v, dict):
                rows.append((name + "/", b"40000 " + name.encode(), build(v)))
            else:
                rows.append((name, b"100644 " + name.encode(), v))
        # git orders a directory as if its name ended in '/'.
        rows.sort(key=lambda r: r[0].encode())
        data = b"".join(head + b"\0" + bytes.fromhex(oid) for _, head, oid in rows)
        oid = object_id("tree", data)
        objects[oid] = data
        return oid

    nested = {}
    for path, oid in files.items():
        *dirs, name = path.split("/")
        d = nested
        for part in dirs:
            d = d.setdefault(part, {})
        d[name] = oid
    return objects, build(nested)


def commit_data(tree, parent, epoch, who, message):
    ident = f"{IDENT.format(who)} {epoch} +0000"
    lines = [f"tree {tree}"] + ([f"parent {parent}"] if parent else []) + [f"author {ident}", f"committer {ident}"]
    return ("\n".join(lines) + f"\n\n{message}\n").encode()


class Repositories:
    """Bare repositories under `root`, written when first asked for and
    brought up to date as commits are added."""

    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()
        self.written = {}  # repo dir -> set of object ids written

    def path(self, repo, corrupt=None):
        """The bare repository of `repo`; with `corrupt` (a glob), a copy in
        which the blobs of matching paths hold other bytes than their ids say."""
        name = f"{repo.kind}s/{repo.id}.git" if corrupt is None else f"corrupt/{repo.kind}s/{repo.id}.git"
        d = os.path.join(self.root, name)
        with self.lock:
            if corrupt is not None and d in self.written:
                subprocess.run(["rm", "-rf", d], check=True)
                del self.written[d]
            if d not in self.written:
                os.makedirs(d, exist_ok=True)
                subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", d], check=True)
                for k, v in [("uploadpack.allowAnySHA1InWant", "true"), ("uploadpack.allowFilter", "true"),
                             ("http.receivepack", "false")]:
                    subprocess.run(["git", "-C", d, "config", k, v], check=True)
                self.written[d] = set()
            self.write(d, repo, corrupt)
        return d

    def write(self, d, repo, corrupt):
        done = self.written[d]
        for c in repo.commits.values():
            for oid, kind, data_of in c.git_objects():
                if oid in done:
                    continue
                data = data_of()
                if kind == "blob" and corrupt and any(fnmatch.fnmatchcase(p, corrupt) for p in c.paths_of(oid)):
                    data = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\0"
                self.loose(d, oid, kind, data)
                done.add(oid)
        for name, sha in repo.refs.items():
            ref = name if name.startswith("refs/") else f"refs/heads/{name}"
            target = os.path.join(d, ref)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as f:
                f.write(sha + "\n")

    @staticmethod
    def loose(d, oid, kind, data):
        path = os.path.join(d, "objects", oid[:2], oid[2:])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(zlib.compress(b"%s %d\0" % (kind.encode(), len(data)) + data))
        os.replace(path + ".tmp", path)


def http_backend(project_root, path_info, method, query, content_type, protocol, body, encoding=None):
    """Runs `git http-backend` as the CGI it is; returns (status, headers, body)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": project_root,
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type or "",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": project_root,
    }
    if protocol:
        env["GIT_PROTOCOL"] = protocol
    if encoding:
        env["HTTP_CONTENT_ENCODING"] = encoding  # git gzips larger requests
    p = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
    head, sep, out = p.stdout.partition(b"\r\n\r\n")
    if not sep:
        head, _, out = p.stdout.partition(b"\n\n")
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = int(v.strip().split()[0])
        elif k:
            headers.append((k.strip(), v.strip()))
    return status, headers, out
