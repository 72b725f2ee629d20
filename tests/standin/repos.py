"""Repositories, commits and refs as the Hub keeps them: a commit is a
snapshot {path: Blob} with a date, and refs name commits."""

import datetime
import fnmatch
import hashlib
import re

from . import git
from .blobs import lfs_pointer

# What the Hub's default .gitattributes sends to LFS, plus anything large.
LFS_PATTERNS = ["*.safetensors", "*.bin", "*.gguf", "*.parquet", "*.onnx", "*.h5", "*.msgpack", "*.pt"]
LFS_MIN_SIZE = 10 << 20

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


class Entry:
    """A file in a commit, with what the tree listing says about it."""

    def __init__(self, path, blob, lfs=None):
        self.path = path
        self.blob = blob
        if lfs is None:
            name = path.rsplit("/", 1)[-1]
            lfs = blob.size >= LFS_MIN_SIZE or any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS)
        self.lfs = lfs
        # The file's Xet hash once the CAS holds it (Xet-backed repos).
        self.xet = None
        self._listing = None

    def listing(self):
        if self.xet:
            return {**self.git_listing(), "xetHash": self.xet}
        return self.git_listing()

    def git_listing(self):
        if self._listing is None:
            if self.lfs:
                pointer = lfs_pointer(self.blob)
                self._listing = {
                    "type": "file",
                    "oid": hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest(),
                    "size": self.blob.size,
                    "lfs": {"oid": self.blob.sha256(), "size": self.blob.size, "pointerSize": len(pointer)},
                    "path": self.path,
                }
            else:
                self._listing = {"type": "file", "oid": self.blob.git_sha1(), "size": self.blob.size, "path": self.path}
        return self._listing

    def etag(self):
        return self.blob.sha256() if self.lfs else self.listing()["oid"]


class Commit:
    """A commit as git has it: its id is the id of a real git commit of the
    files' blobs (LFS files as their pointers), which `git` serves too."""

    def __init__(self, repo, parent, files, date, message):
        self.parent = parent
        self.files = files  # path -> Entry
        self.date = date
        self.message = message
        self.trees, root = git.trees({p: e.listing()["oid"] for p, e in files.items()})
        # Who committed names the repo, so that two repos' commits differ.
        who = f"{repo.kind}.{repo.id}".replace("/", ".")
        self.data = git.commit_data(root, parent.sha if parent else None, int(date.timestamp()), who, message)
        self.sha = git.object_id("commit", self.data)

    def git_objects(self):
        """(oid, kind, a function giving the data): the commit, its trees and
        its blobs (read only when asked for)."""
        yield self.sha, "commit", lambda: self.data
        for oid, data in self.trees.items():
            yield oid, "tree", lambda data=data: data
        for e in self.files.values():
            yield e.listing()["oid"], "blob", lambda e=e: git.blob_data(e)

    def paths_of(self, oid):
        return [p for p, e in self.files.items() if e.listing()["oid"] == oid]

    def date_iso(self):
        return self.date.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def directories(self):
        dirs = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    def dir_oid(self, d):
        h = hashlib.sha1(b"tree\0")
        prefix = d + "/"
        for path in sorted(self.files):
            if path.startswith(prefix):
                h.update(path.encode() + b"\0" + self.files[path].listing()["oid"].encode())
        return h.hexdigest()


class Repo:
    def __init__(self, kind, repo_id, private=False, gated=False, readers=(), approved=(), xet=False):
        assert kind in ("model", "dataset", "space")
        self.kind = kind
        self.id = repo_id
        self.xet = xet  # its LFS files are stored in Xet
        self.private = private
        self.gated = gated  # False, "auto" or "manual"
        self.readers = set(readers)  # users who may see a private repo
        self.approved = set(approved)  # users who accepted a gated repo's conditions
        self.commits = {}
        self.refs = {}
        self.clock = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

    def commit(self, branch, changes, message="update", parent_ref=None):
        """Adds a commit on `branch`: changes maps path -> Entry, or None to delete."""
        parent = self.commits.get(self.refs.get(parent_ref or branch))
        files = dict(parent.files) if parent else {}
        for path, entry in changes.items():
            if entry is None:
                files.pop(path, None)
            else:
                files[path] = entry
        self.clock += datetime.timedelta(days=1, seconds=3661)
        c = Commit(self, parent, files, self.clock, message)
        self.commits[c.sha] = c
        self.refs[branch] = c.sha
        return c

    def tag(self, name, sha):
        self.refs[name] = sha

    def resolve(self, rev):
        if rev in self.refs:
            return self.commits[self.refs[rev]]
        if COMMIT_RE.match(rev) and rev in self.commits:
            return self.commits[rev]
        return None
