"""File contents the stand-in serves: literal bytes, files on disk, and
deterministic synthetic data of any size that is never stored."""

import hashlib
import json
import os
import struct
import threading

BLOCK = 1 << 20


class Blob:
    size: int

    def chunks(self, start, end, chunk=BLOCK):
        """Yields the bytes in [start, end) in pieces of at most `chunk`."""
        raise NotImplementedError

    def read_all(self):
        return b"".join(self.chunks(0, self.size))

    def sha256(self):
        raise NotImplementedError

    def git_sha1(self):
        h = hashlib.sha1(b"blob %d\0" % self.size)
        for c in self.chunks(0, self.size):
            h.update(c)
        return h.hexdigest()


class BytesBlob(Blob):
    def __init__(self, data):
        self.data = bytes(data)
        self.size = len(self.data)
        self._sha256 = hashlib.sha256(self.data).hexdigest()

    def chunks(self, start, end, chunk=BLOCK):
        view = memoryview(self.data)
        for off in range(start, end, chunk):
            yield view[off:min(end, off + chunk)]

    def sha256(self):
        return self._sha256


class FileBlob(Blob):
    """A real file (the MiniLM model), read on demand; hashes are computed once."""

    def __init__(self, path):
        self.path = path
        self.size = os.path.getsize(path)
        self._sha256 = None

    def chunks(self, start, end, chunk=BLOCK):
        with open(self.path, "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                data = f.read(min(chunk, left))
                if not data:
                    raise IOError(f"{self.path} shrank while being served")
                left -= len(data)
                yield data

    def sha256(self):
        if self._sha256 is None:
            h = hashlib.sha256()
            for c in self.chunks(0, self.size):
                h.update(c)
            self._sha256 = h.hexdigest()
        return self._sha256


class SyntheticBlob(Blob):
    """`size` bytes derived from `seed`: a 1 MiB pseudo-random block, with each
    block stamped with its index so no two blocks (or files) are alike.
    Generating a range costs a memcpy per block, so multi-GB files are served
    at loopback speed without being stored. The sha256 of big ones is cached
    on disk, since computing it takes seconds per GB."""

    _bases = {}
    _lock = threading.Lock()

    def __init__(self, seed, size, hash_cache=None):
        self.seed = str(seed)
        self.size = int(size)
        self.hash_cache = hash_cache
        self._sha256 = None
        with SyntheticBlob._lock:
            base = SyntheticBlob._bases.get(self.seed)
            if base is None:
                out = bytearray()
                counter = 0
                s = self.seed.encode()
                while len(out) < BLOCK:
                    out += hashlib.sha256(s + struct.pack("<Q", counter)).digest()
                    counter += 1
                base = bytes(out[:BLOCK])
                SyntheticBlob._bases[self.seed] = base
        self.base = base
        self.tag = hashlib.sha256(self.seed.encode()).digest()[:8]

    def block(self, index):
        b = bytearray(self.base)
        b[0:16] = struct.pack("<Q", index) + self.tag
        return b

    def chunks(self, start, end, chunk=BLOCK):
        off = start
        while off < end:
            index, within = divmod(off, BLOCK)
            n = min(BLOCK - within, end - off, chunk)
            blk = self.block(index)
            yield memoryview(blk)[within:within + n]
            off += n

    def sha256(self):
        if self._sha256 is not None:
            return self._sha256
        key = f"{self.seed}:{self.size}"
        cache = {}
        if self.hash_cache and os.path.exists(self.hash_cache):
            try:
                with open(self.hash_cache) as f:
                    cache = json.load(f)
            except ValueError:
                cache = {}
        if key in cache:
            self._sha256 = cache[key]
            return self._sha256
        h = hashlib.sha256()
        for c in self.chunks(0, self.size):
            h.update(c)
        self._sha256 = h.hexdigest()
        if self.hash_cache and self.size >= 64 * BLOCK:
            cache[key] = self._sha256
            os.makedirs(os.path.dirname(self.hash_cache), exist_ok=True)
            tmp = f"{self.hash_cache}.{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump(cache, f)
            os.replace(tmp, self.hash_cache)
        return self._sha256


def lfs_pointer(blob):
    return (
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{blob.sha256()}\n"
        f"size {blob.size}\n"
    ).encode()
