"""The nix-hf benchmark: one run, the same stand-in data, nix-hf against the
official client (huggingface_hub, default settings, fresh cache) and against
the machine's limit (curl to /dev/null, nix-store --add), into a local store
and through a nix-daemon as an unprivileged user. Prints a table of figures
with ratios and goals. Not a test: nothing here asserts timings.

Run it with bench/run (or bench/run --small for the quick version CI runs)."""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))
from harness import Daemon, Nix, Standin, xorb_bytes  # noqa: E402

MB = 1_000_000


def timed(fn):
    t = time.monotonic()
    out = fn()
    return time.monotonic() - t, out


def nix_fetch(nix, url, env=None):
    """A cold `nix eval` of fetchTree: (seconds, peak RSS MiB, store path)."""
    e = dict(nix.env)
    e.update(env or {})
    cmd = ["nix", "eval", "--impure", "--raw", "--expr", f'(builtins.fetchTree "{url}").outPath']
    cold()
    t = time.monotonic()
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # os.wait4 reaps the child and reports its peak RSS (KiB).
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    took = time.monotonic() - t
    if p.returncode:
        raise RuntimeError(f"nix fetch of {url} failed:\n{err.decode()[-3000:]}")
    return took, usage.ru_maxrss / 1024, out.decode().strip()


def cold():
    """A cold machine for each cold run, peers alike: write back and drop the
    page cache (root only; otherwise runs go on with whatever is cached)."""
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def disk_written(path):
    """Bytes written so far to the disk that holds `path` (/proc/diskstats)."""
    st = os.stat(path)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if int(fields[0]) == major and int(fields[1]) == minor:
                return int(fields[9]) * 512
    raise RuntimeError(f"no /proc/diskstats line for {path}")


def measured(fn, where="/tmp"):
    """Runs `fn` cold: (seconds, bytes written to the disk by the time
    everything is synced, peak extra use of the file system). Writes still
    in the page cache when `fn` returns are synced afterwards, outside the
    time."""
    cold()
    before = disk_written(where)
    free = lambda: (lambda v: v.f_bavail * v.f_frsize)(os.statvfs(where))
    start_free, low, done = free(), [free()], threading.Event()

    def sample():
        while not done.wait(0.02):
            low[0] = min(low[0], free())

    sampler = threading.Thread(target=sample)
    sampler.start()
    t = time.monotonic()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    took = time.monotonic() - t
    subprocess.run(["sync"])
    return took, disk_written(where) - before, start_free - low[0]


def through_daemon(hub, *args):
    """`nix ARGS`, cold, through a fresh nix-daemon as its unprivileged
    client: measured()."""
    d = Daemon(hub.url)
    try:
        d.run("eval", "--expr", "1")  # the daemon answers
        return measured(lambda: d.waited(*args))
    finally:
        d.stop()


def daemon_fetch(hub, expr, *options):
    """A cold fetch of `expr` through a fresh nix-daemon: measured()."""
    return through_daemon(hub, "eval", "--impure", "--raw", "--expr", expr, *options)


def daemon_add(hub, tree):
    """Nix's own add through a fresh nix-daemon: `nix store add` of a tree
    held in memory (tmpfs): measured()."""
    return through_daemon(hub, "store", "add", "--mode", "nar", "--name", "source", tree)


def page_cache_write(work, size):
    """Seconds to write `size` bytes of zeros into a new file, cold, through
    the page cache (as a nix-daemon restores a NAR) and with O_DIRECT (as
    nix-hf writes): what this machine charges for each."""
    out = []
    for flags in ("", " oflag=direct"):
        f = os.path.join(work, "page-cache-write")
        cmd = f"head -c {size} /dev/zero | dd of={f} bs=8M iflag=fullblock{flags} status=none"
        out.append(measured(lambda: subprocess.run(["bash", "-c", cmd], check=True), where=work)[0])
        os.remove(f)
    return out


def local_fetch(root, hub, expr):
    """The same into a fresh local store (single-user nix): measured()."""
    n = fresh_nix(root, hub)
    n.run("eval", "--expr", "1")  # the store exists, as the daemon's does
    try:
        return measured(lambda: n.run("eval", "--impure", "--raw", "--expr", expr), where=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def hf_fetch(hub, repo, home, revision=None):
    """The official client as users run it: default settings (with hf_xet,
    which it uses for Xet-backed repos), a fresh or the given cache."""
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=home, HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_DISABLE_TELEMETRY="1")
    env.pop("HF_HUB_DISABLE_XET", None)
    code = f"import huggingface_hub as h; h.snapshot_download({repo!r}, revision={revision!r})"
    cold()
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.monotonic() - t


def cdn_urls(hub, repo, files):
    urls = []
    for f in files:
        req = urllib.request.Request(f"{hub.url}/{repo}/resolve/main/{f}", method="HEAD")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(req)
        except urllib.error.HTTPError as e:
            urls.append(urllib.parse.urljoin(hub.url, e.headers["Location"]))
    return urls


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def both_at_once(work, urls, sizes, source, hashes, write):
    """Seconds for one shell pipeline per shard, run at once: `source` (the
    stand-in's bytes by curl, or zeros), teed into `hashes` sha256sum
    processes, and written with `dd oflag=direct` when `write` (else
    dropped). Every process of the pipelines is waited for."""
    scripts = []
    for i, (u, size) in enumerate(zip(urls, sizes)):
        fifos = [os.path.join(work, f"hash{i}-{k}") for k in range(hashes)]
        for f in fifos:
            if not os.path.exists(f):
                os.mkfifo(f)
        sink = (f" | dd of={os.path.join(work, f'shard{i}')} bs=8M iflag=fullblock oflag=direct status=none"
                if write else " > /dev/null")
        hashers = "".join(f"sha256sum < {f} > /dev/null & " for f in fifos)
        tee = f" | tee {' '.join(fifos)}" if fifos else ""
        scripts.append(f"{hashers}{source(u, size)}{tee}{sink}; wait")
    cold()
    t = time.monotonic()
    procs = [subprocess.Popen(["bash", "-c", f"set -o pipefail; {s}"]) for s in scripts]
    if any(p.wait() for p in procs):
        raise RuntimeError("a reference pipeline failed")
    took = time.monotonic() - t
    for i in range(len(urls)):
        try:
            os.remove(os.path.join(work, f"shard{i}"))
        except FileNotFoundError:
            pass
    return took


def commit_of(hub, repo, rev):
    with urllib.request.urlopen(f"{hub.url}/api/models/{repo}/revision/{rev}") as r:
        return json.load(r)["sha"]


def shard_bytes(hub):
    """The bytes of the last CDN transfer in the stand-in's log."""
    return [q for q in hub.requests() if q["server"] == "cdn"][-1]["bytes"]


def fresh_nix(root, hub):
    shutil.rmtree(root, ignore_errors=True)
    return Nix(root, hub.url)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="tiny sizes: checks the script works (CI)")
    ap.add_argument("--work", default=None, help="scratch directory (needs ~5x the big snapshot in free space)")
    a = ap.parse_args()
    shard, small_shard, daemon_shard = ("32MiB", "8MiB", "16MiB") if a.small else ("2GiB", "512MiB", "1GiB")
    runs = 1 if a.small else 3
    small_count = 300 if a.small else 2345
    work = a.work or tempfile.mkdtemp(prefix="nix-hf-bench.")
    os.makedirs(work, exist_ok=True)
    os.makedirs(os.path.join(work, "standin"), exist_ok=True)
    hub = Standin(os.path.join(work, "standin"),
                  ["--synthetic", f"nixhf/bench=2x{shard}", "--synthetic", f"nixhf/bench1g=2x{small_shard}",
                   "--synthetic", f"nixhf/bench2g=2x{daemon_shard}",
                   "--small-files", f"nixhf/small-files={small_count}",
                   "--xet-synthetic", f"nixhf/xbench=2x{shard}"])
    shards = [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    rows = []
    try:
        # Warm the stand-in's hash cache so no figure includes its hashing.
        hub.settings(cdn_rate=0)
        for repo in ("nixhf/bench", "nixhf/bench1g", "nixhf/bench2g"):
            cdn_urls(hub, repo, shards)

        # The stand-in itself: how fast it serves, uncapped and capped (it
        # must never be what a figure measures).
        stand_in = []
        for rate in (0, 100 * MB):
            hub.settings(cdn_rate=rate)
            took, _ = timed(lambda: subprocess.run(["curl", "-sf", "-o", "/dev/null", cdn_urls(hub, "nixhf/bench", shards[:1])[0]],
                                                   check=True))
            stand_in.append(f"{shard_bytes(hub) / took / MB:.0f} MB/s " + ("uncapped" if not rate else "at a 100 MB/s cap"))

        spread = lambda v: f"{min(v):.2f}-{max(v):.2f}"

        # 1. cold fetch, CDN capped at 100 MB/s per connection; runs
        # interleaved, medians (the store of the last run stays for 2.)
        hub.settings(cdn_rate=100 * MB)
        runs1 = {"nix": [], "hf": [], "rss": []}
        for _ in range(runs):
            shutil.rmtree(os.path.join(work, "n1"), ignore_errors=True)
            n = fresh_nix(os.path.join(work, "n1"), hub)
            t, rss, path = nix_fetch(n, "hf:nixhf/bench")
            runs1["nix"].append(t)
            runs1["rss"].append(rss)
            runs1["hf"].append(hf_fetch(hub, "nixhf/bench", os.path.join(work, "hf1")))
            shutil.rmtree(os.path.join(work, "hf1"), ignore_errors=True)
        t_nix, t_hf, rss_big = (statistics.median(runs1[k]) for k in ("nix", "hf", "rss"))
        rows.append(("1. cold fetch, 2 shards, CDN 100 MB/s/conn", f"{t_nix:.2f} s ({spread(runs1['nix'])})",
                     f"hf_hub {t_hf:.2f} s ({spread(runs1['hf'])})", t_nix / t_hf, "<= 0.3"))
        total = sum(os.path.getsize(os.path.join(n.real_path(path), f)) for f in shards)

        # 6b. the same for the smaller snapshot (memory must not grow with size)
        n6 = fresh_nix(os.path.join(work, "n6"), hub)
        _, rss_small, _ = nix_fetch(n6, "hf:nixhf/bench1g")
        shutil.rmtree(os.path.join(work, "n6"), ignore_errors=True)

        # 2. uncapped, against the simplest pipeline that does the same work
        # (receive, hash twice, write once with O_DIRECT), both shards at once
        hub.settings(cdn_rate=0)
        urls = cdn_urls(hub, "nixhf/bench", shards)
        sizes = [os.path.getsize(os.path.join(n.real_path(path), f)) for f in shards]
        shutil.rmtree(os.path.join(work, "n1"), ignore_errors=True)
        runs2 = []
        for _ in range(runs):
            n2 = fresh_nix(os.path.join(work, "n2"), hub)
            runs2.append(nix_fetch(n2, "hf:nixhf/bench")[0])
            shutil.rmtree(os.path.join(work, "n2"), ignore_errors=True)
        t_nix2 = statistics.median(runs2)
        pipe_dir = os.path.join(work, "pipeline")
        os.makedirs(pipe_dir, exist_ok=True)
        source = lambda u, size: f"curl -sf {u!r}"
        zeros = lambda u, size: f"head -c {size} /dev/zero"
        t_pipe = both_at_once(pipe_dir, urls, sizes, source, hashes=2, write=True)
        t_curl = both_at_once(pipe_dir, urls, sizes, source, hashes=0, write=False)
        t_dd = both_at_once(pipe_dir, urls, sizes, zeros, hashes=0, write=True)
        t_sha = both_at_once(pipe_dir, urls, sizes, zeros, hashes=2, write=False)
        shutil.rmtree(pipe_dir, ignore_errors=True)
        rows.append(("2. cold fetch, uncapped", f"{t_nix2:.2f} s ({spread(runs2)})",
                     f"pipeline {t_pipe:.2f} s (curl {t_curl:.2f}, dd {t_dd:.2f}, 2 x sha256 {t_sha:.2f})",
                     t_nix2 / t_pipe, "<= 1.3"))

        # 3. many small files
        n3 = fresh_nix(os.path.join(work, "n3"), hub)
        t_nix3, _, _ = nix_fetch(n3, "hf:nixhf/many-files")
        t_hf3 = hf_fetch(hub, "nixhf/many-files", os.path.join(work, "hf3"))
        shutil.rmtree(os.path.join(work, "hf3"), ignore_errors=True)
        rows.append(("3. 1500 small files", f"{t_nix3:.2f} s", f"hf_hub {t_hf3:.2f} s", t_nix3 / t_hf3, "<= 0.5"))

        # 4. re-evaluating a locked, fetched input
        flake = os.path.join(work, "flake")
        os.makedirs(flake, exist_ok=True)
        with open(os.path.join(flake, "flake.nix"), "w") as f:
            f.write('{ inputs.m = { url = "hf:nixhf/bench1g"; flake = false; };\n'
                    '  outputs = { self, m }: { x = builtins.readFile "${m}/config.json"; }; }\n')
        plain = os.path.join(work, "plain")
        os.makedirs(plain, exist_ok=True)
        with open(os.path.join(plain, "flake.nix"), "w") as f:
            f.write('{ outputs = { self }: { x = "plain"; }; }\n')
        n3.run("flake", "lock", cwd=flake)
        n3.run("flake", "lock", cwd=plain)
        n3.run("eval", ".#x", cwd=flake)
        hub.clear_log()
        t_locked = statistics.median(timed(lambda: n3.run("eval", ".#x", cwd=flake))[0] for _ in range(5))
        requests = len(hub.requests())
        t_plain = statistics.median(timed(lambda: n3.run("eval", ".#x", cwd=plain))[0] for _ in range(5))
        rows.append(("4. re-eval of a locked, fetched input", f"{requests} requests",
                     f"{(t_locked - t_plain) * 1000:+.0f} ms over plain nix eval ({t_plain * 1000:.0f} ms)", None,
                     "0 requests"))

        # 5. re-lock after a commit that changes only README.md
        readme = "# bench\n\nchanged at " + time.strftime("%H:%M:%S") + "\n"
        hub.commit("nixhf/bench1g", {"README.md": readme})
        hub.clear_log()
        n3.run("flake", "update", "m", "--option", "tarball-ttl", "0", cwd=flake)
        log = hub.requests()
        fetched = sum(q["bytes"] for q in log)
        listing = sum(q["bytes"] for q in log if "/api/" in q["path"] and "/resolve-cache/" not in q["path"])
        content = fetched - listing
        rows.append(("5. re-lock after a README.md change", f"{fetched} B ({content} B content)",
                     f"README {len(readme)} B + listing/revision {listing} B", fetched / (len(readme) + listing),
                     "1.0"))
        shutil.rmtree(os.path.join(work, "n3"), ignore_errors=True)

        # 6. memory
        rows.append(("6. peak RSS of nix, figure 1", f"{rss_big:.0f} MiB", "limit 200 MiB", rss_big / 200, "<= 1.0"))
        rows.append(("   peak RSS of nix, smaller snapshot", f"{rss_small:.0f} MiB", f"{rss_big:.0f} MiB (figure 1)",
                     rss_small / rss_big, "about 1"))

        # 7. through a nix-daemon as an unprivileged user, against the same
        # fetch into a local store, uncapped, runs interleaved; medians.
        hub.settings(cdn_rate=0)
        fresh = '(builtins.fetchTree "hf:nixhf/bench2g").outPath'
        n7 = fresh_nix(os.path.join(work, "n7"), hub)
        pin = n7.eval('let r = builtins.fetchTree "hf:nixhf/bench2g"; in { inherit (r) rev narHash; }')
        tree7 = n7.real_path(n7.eval(f"toString {fresh}"))
        snapshot = sum(os.path.getsize(os.path.join(tree7, f)) for f in shards)
        # The same tree in memory, for Nix's own add (tmpfs survives cold()),
        # where the daemon's unprivileged client can read it.
        shm = tempfile.mkdtemp(prefix="nix-hf-bench-tree.", dir="/tmp")
        os.chmod(shm, 0o755)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={snapshot + (64 << 20)},mode=755", "tmpfs", shm], check=True)
        try:
            in_memory = os.path.join(shm, "tree")
            shutil.copytree(tree7, in_memory)
            shutil.rmtree(os.path.join(work, "n7"), ignore_errors=True)
            pinned = (f'(builtins.fetchTree {{ type = "hf"; repo = "nixhf/bench2g"; rev = "{pin["rev"]}"; '
                      f'narHash = "{pin["narHash"]}"; }}).outPath')
            runs7 = {"local": [], "fresh": [], "locked": [], "resumable": [], "own-add": [], "hf": []}
            for _ in range(runs):
                runs7["local"].append(local_fetch(os.path.join(work, "n7"), hub, fresh))
                runs7["fresh"].append(daemon_fetch(hub, fresh))
                runs7["locked"].append(daemon_fetch(hub, pinned))
                runs7["resumable"].append(daemon_fetch(hub, pinned, "--option", "hf-resumable-copy", "always"))
                runs7["own-add"].append(daemon_add(hub, in_memory))
                hf_home = os.path.join(work, "hf7")
                runs7["hf"].append(measured(lambda: hf_fetch(hub, "nixhf/bench2g", hf_home)))
                shutil.rmtree(hf_home, ignore_errors=True)
            # The same over a 1 Gbit/s link (all CDN answers share 125 MB/s), as
            # most users fetch: there the network bounds both, not the daemon.
            hub.settings(link_rate=125 * MB)
            runs7["link-local"], runs7["link-locked"] = [], []
            for _ in range(runs):
                runs7["link-local"].append(local_fetch(os.path.join(work, "n7"), hub, fresh))
                runs7["link-locked"].append(daemon_fetch(hub, pinned))
            hub.settings(link_rate=0)
        finally:
            subprocess.run(["umount", shm], check=True)
            os.rmdir(shm)
        write_cached, write_direct = page_cache_write(work, snapshot)
        med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in runs7.items()}
        span = lambda k: spread([r[0] for r in runs7[k]])
        local = med["local"][0]
        gib = snapshot / (1 << 30)
        rows.append((f"7. through a nix-daemon, fresh lock ({gib:.0f} GiB)", f"{med['fresh'][0]:.2f} s ({span('fresh')})",
                     f"local store {local:.2f} s ({span('local')})", med["fresh"][0] / local, "<= 1.15"))
        rows.append(("   the same, locked input (narHash known)", f"{med['locked'][0]:.2f} s ({span('locked')})",
                     f"local store {local:.2f} s", med["locked"][0] / local, "<= 1.15"))
        rows.append(("   the same, locked, hf-resumable-copy = always", f"{med['resumable'][0]:.2f} s ({span('resumable')})",
                     f"local store {local:.2f} s", med["resumable"][0] / local, "-"))
        rows.append(("   the same, locked, over a 1 Gbit/s link", f"{med['link-locked'][0]:.2f} s ({span('link-locked')})",
                     f"local store {med['link-local'][0]:.2f} s ({span('link-local')})",
                     med["link-locked"][0] / med["link-local"][0], "-"))
        rows.append(("   Nix's own add: nix store add from memory", f"{med['own-add'][0]:.2f} s ({span('own-add')})",
                     f"local store {local:.2f} s", med["own-add"][0] / local, "-"))
        rows.append(("   the same, locked, against Nix's own add", f"{med['locked'][0]:.2f} s",
                     f"nix store add from memory {med['own-add'][0]:.2f} s", med["locked"][0] / med["own-add"][0],
                     "about 1"))
        rows.append(("   the machine: page-cache write, cold (once)", f"{write_cached:.2f} s (dd)",
                     f"with O_DIRECT {write_direct:.2f} s (dd oflag=direct)", write_cached / write_direct, "-"))
        rows.append(("   huggingface_hub (Xet off), same snapshot", f"{med['hf'][0]:.2f} s ({span('hf')})",
                     f"local store {local:.2f} s", med["hf"][0] / local, "-"))
        for k, name in (("local", "local store"), ("fresh", "daemon, fresh lock"), ("locked", "daemon, locked input"),
                        ("resumable", "daemon, locked, resumable"), ("hf", "huggingface_hub")):
            goal = {"local": "1.0", "fresh": "2 (a resumable copy)", "locked": "<= 1.1", "resumable": "2", "hf": "-"}[k]
            rows.append((f"   disk written / snapshot, {name}", f"{med[k][1] / snapshot:.2f}",
                         f"peak disk / snapshot {med[k][2] / snapshot:.2f}", med[k][1] / snapshot, goal))

        # 8. thousands of small files from a far Hub: the stand-in waits 50 ms
        # before every answer. nix-hf (one git pack), the same with the git
        # endpoint off (a request per file), and huggingface_hub; requests
        # as the stand-in counted them.
        hub.settings(latency=0.05, cdn_rate=0)
        far = {}
        for name, git in (("pack", True), ("each", False)):
            hub.settings(git=git)
            n8 = fresh_nix(os.path.join(work, "n8"), hub)
            hub.clear_log()
            far[name] = (nix_fetch(n8, "hf:nixhf/small-files")[0], len(hub.requests()))
            shutil.rmtree(os.path.join(work, "n8"), ignore_errors=True)
        hub.settings(git=True)
        hub.clear_log()
        far["hf"] = (hf_fetch(hub, "nixhf/small-files", os.path.join(work, "hf8")), len(hub.requests()))
        shutil.rmtree(os.path.join(work, "hf8"), ignore_errors=True)
        hub.settings(latency=0)
        rows.append((f"8. {small_count} small files, 50 ms per answer", f"{far['pack'][0]:.2f} s, {far['pack'][1]} requests",
                     f"hf_hub {far['hf'][0]:.2f} s, {far['hf'][1]} requests", far["pack"][0] / far["hf"][0],
                     "<= 3 s, <= 10 requests"))
        rows.append(("   the same, git endpoint off (a request each)", f"{far['each'][0]:.2f} s, {far['each'][1]} requests",
                     f"hf_hub {far['hf'][0]:.2f} s", far["each"][0] / far["hf"][0], "-"))
        # 9. Xet: figure 1's snapshot (random bytes, which Xet cannot
        # deduplicate) from Hugging Face's CAS: nix-hf against
        # huggingface_hub + hf_xet (default settings: no chunk cache), and
        # nix-hf through the LFS bridge. Then the re-lock after the first
        # shard grew by 10 %: bytes of xorbs moved, against hf_xet's and
        # the floor (what that commit added to the CAS).
        hub.settings(cdn_rate=0)
        n9 = fresh_nix(os.path.join(work, "n9"), hub)
        t_x, rss_x, _ = nix_fetch(n9, "hf:nixhf/xbench/v1")
        hf_home = os.path.join(work, "hf9")
        t_hfx = hf_fetch(hub, "nixhf/xbench", hf_home, revision="v1")
        nb = fresh_nix(os.path.join(work, "n9b"), hub)
        t_bridge, _, _ = nix_fetch(nb, "hf:nixhf/xbench/v1", env={"HF_HUB_DISABLE_XET": "1"})
        shutil.rmtree(os.path.join(work, "n9b"), ignore_errors=True)
        rows.append(("9. Xet: cold fetch from the CAS, 2 shards", f"{t_x:.2f} s, {rss_x:.0f} MiB",
                     f"hf_hub + hf_xet {t_hfx:.2f} s", t_x / t_hfx, "<= 1.0"))
        rows.append(("   the same through the LFS bridge", f"{t_bridge:.2f} s", f"from the CAS {t_x:.2f} s",
                     t_bridge / t_x, "-"))
        # The same from a far CAS: the stand-in waits 20 ms before every
        # answer, as across a continent. nix-hf asks for a piece's
        # reconstruction while the pieces before it are fetched, so each
        # costs one round trip, its xorb range; requests as the stand-in's
        # CAS counted them.
        hub.settings(latency=0.02)
        far9 = {}
        n9c = fresh_nix(os.path.join(work, "n9c"), hub)
        hub.clear_log()
        t = nix_fetch(n9c, "hf:nixhf/xbench/v1")[0]
        far9["nix"] = (t, sum(q["server"] == "cas" for q in hub.requests()))
        hub.clear_log()
        t = hf_fetch(hub, "nixhf/xbench", os.path.join(work, "hf9c"), revision="v1")
        far9["hf"] = (t, sum(q["server"] == "cas" for q in hub.requests()))
        hub.settings(latency=0)
        shutil.rmtree(os.path.join(work, "n9c"), ignore_errors=True)
        shutil.rmtree(os.path.join(work, "hf9c"), ignore_errors=True)
        rows.append(("   the same, 20 ms per answer", f"{far9['nix'][0]:.2f} s, {far9['nix'][1]} CAS requests",
                     f"hf_xet {far9['hf'][0]:.2f} s, {far9['hf'][1]} CAS requests", far9["nix"][0] / far9["hf"][0], "-"))
        hub.clear_log()
        n9.run("eval", "--impure", "--expr", '(builtins.fetchTree "hf:nixhf/xbench").narHash')
        moved = xorb_bytes(hub)
        hub.clear_log()
        hf_fetch(hub, "nixhf/xbench", hf_home)
        hf_moved = xorb_bytes(hub)
        floor = hub.admin("info")["xet_added"][commit_of(hub, "nixhf/xbench", "main")]
        with urllib.request.urlopen(f"{hub.url}/api/models/nixhf/xbench/tree/main") as r:
            size1 = next(e["size"] for e in json.load(r) if e["path"] == shards[0])
        rows.append(("   re-lock, first shard grew by 10 %", f"{moved / MB:.1f} MB ({moved / size1:.1%} of it)",
                     f"hf_xet {hf_moved / MB:.1f} MB, floor {floor / MB:.1f} MB", moved / floor, "<= 15 % of it"))
        shutil.rmtree(os.path.join(work, "n9"), ignore_errors=True)
        shutil.rmtree(hf_home, ignore_errors=True)
    finally:
        hub.stop()
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)

    size = total / (1 << 30)
    print(f"\nnix-hf benchmark: {size:.2f} GiB snapshot ({'small' if a.small else 'full'} run), "
          f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; page cache dropped before "
          "each cold run")
    print(f"stand-in (curl, one connection, loopback): {', '.join(stand_in)}")
    print(f"{'figure':48} | {'nix-hf':28} | {'peer / limit':48} | {'ratio':6} | goal")
    print(f"{'-' * 48}-|-{'-' * 28}-|-{'-' * 48}-|-{'-' * 6}-|-----")
    for name, mine, peer, ratio, goal in rows:
        r = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"{name:48} | {mine:28} | {peer:48} | {r:6} | {goal}")


if __name__ == "__main__":
    main()
