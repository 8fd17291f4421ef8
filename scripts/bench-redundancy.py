#!/usr/bin/env python3
"""What redundancy costs: PUT throughput and storage per mode, GetBatch with a target down.

Usage: scripts/bench-redundancy.py [path/to/moss]   (default target/release/moss; build it with
       `cargo build --release -p moss` first)

Starts a proxy and 5 targets (two mountpaths each, on the same disk) as separate processes on
loopback, in a temporary directory, with four buckets: `off` (no redundancy), `mir`
(mirror.copies=2: a second copy on the target's other mountpath), `rep` (ec.enabled,
objsize_limit above the object size: 2 full replicas on other targets) and `ec` (ec.enabled,
2 data + 2 parity slices). For each it
PUTs the same objects with 16 writers and prints objects/s, MiB/s and the bytes on all disks per
byte stored. Then it times streaming GetBatch over the `ec` bucket with every target up,
SIGKILLs one target (not the DT), and times it again while the dead target is still in the map
(first pass: entries are rebuilt from slices; then three more passes that read around it), after
the map dropped it, and once more (objects now rebuilt on their new owners). Numbers, not assertions: run it on a quiet machine.
Standard library only."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
TARGETS = 5
WRITERS = 16
CELLS = [("64KiB", 64 << 10, 3000), ("1MiB", 1 << 20, 400)]  # name, object size, objects
BATCH_ENTRIES = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, method: str = "GET", body: bytes | None = None, headers=None):
    """One HTTP exchange (no redirects followed): (status, headers, body)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    path = u.path + ("?" + u.query if u.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def put(endpoint: str, bucket: str, name: str, data: bytes) -> None:
    status, h, _ = request(f"{endpoint}/v1/objects/{bucket}/{name}", "PUT", b"")
    if status == 307:
        status, _, text = request(h["location"], "PUT", data)
    if status != 200:
        raise RuntimeError(f"PUT {bucket}/{name}: {status}")


def wait_targets(endpoint: str, n: int) -> None:
    for _ in range(600):
        try:
            _, _, body = request(f"{endpoint}/v1/daemon?what=smap")
            if len(json.loads(body)["tmap"]) == n:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"cluster did not reach {n} targets")


def set_props(endpoint: str, bucket: str, value: dict) -> None:
    body = json.dumps({"action": "set-bprops", "value": value}).encode()
    status, _, text = request(f"{endpoint}/v1/buckets/{bucket}", "PATCH", body)
    if status != 200:
        raise RuntimeError(f"set-bprops {bucket}: {status} {text!r}")


def wait_rebalance(endpoint: str) -> None:
    """Until every target's rebalance passes (which also repair EC buckets) have ended."""
    body = json.dumps({"ID": "", "Kind": "rebalance"}).encode()
    for _ in range(3000):
        _, _, text = request(f"{endpoint}/v1/cluster?what=qryxstats", "GET", body)
        snaps = [s for per in json.loads(text).values() for s in per or []]
        if snaps and all(s["end-time"] != "0001-01-01T00:00:00Z" for s in snaps):
            return
        time.sleep(0.2)
    raise RuntimeError("rebalance did not end")


def disk_bytes(root: Path, bucket: str) -> int:
    total = 0
    for mp in root.glob("t*/mp*"):
        for kind in ("%ob", "%ec", "%mi"):
            for dirpath, _, files in os.walk(mp / "@ais" / bucket / kind):
                total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def put_cell(endpoint: str, bucket: str, size: int, count: int) -> float:
    payload = os.urandom(size)
    names = iter(range(count))
    lock = threading.Lock()

    def writer():
        while True:
            with lock:
                k = next(names, None)
            if k is None:
                return
            put(endpoint, bucket, f"o-{k:05}", payload)

    failures = []

    def guarded():
        try:
            writer()
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(e)

    start = time.perf_counter()
    threads = [threading.Thread(target=guarded) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} writers failed; first: {failures[0]}")
    return time.perf_counter() - start


def batch(endpoint: str, bucket: str, names: list[str]) -> tuple[float, int, str]:
    """Seconds, bytes and DT URL of one streaming GetBatch."""
    body = json.dumps({"in": [{"objname": n} for n in names], "strm": True}).encode()
    headers = {"Content-Type": "application/json"}
    start = time.perf_counter()
    status, h, _ = request(f"{endpoint}/v1/ml/moss/{bucket}?provider=ais", "GET", body, headers)
    if status != 307:
        raise RuntimeError(f"GetBatch: {status}")
    location = h["location"]
    status, _, data = request(location, "GET", body, headers)
    if status != 200:
        raise RuntimeError(f"GetBatch at the DT: {status} {data[:200]!r}")
    secs = time.perf_counter() - start
    return secs, len(data), location.split("/v1/")[0]


def main() -> None:
    moss = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "release" / "moss")
    work = Path(tempfile.mkdtemp(prefix="moss-redundancy."))
    procs: list[subprocess.Popen] = []
    try:
        pport = free_port()
        endpoint = f"http://127.0.0.1:{pport}"
        log = open(work / "nodes.log", "w")
        procs.append(subprocess.Popen([moss, "proxy", "--listen", f"127.0.0.1:{pport}",
                                       "--data", str(work / "p")], stdout=log, stderr=log))
        time.sleep(1)
        for _ in range(100):
            if (work / "p" / "cluster.secret").exists():
                break
            time.sleep(0.1)
        target_urls = []
        for i in range(TARGETS):
            port = free_port()
            target_urls.append(f"http://127.0.0.1:{port}")
            procs.append(subprocess.Popen(
                [moss, "target", "--listen", f"127.0.0.1:{port}", "--proxy", endpoint,
                 "--data", str(work / f"t{i}"), "--mountpath", str(work / f"t{i}" / "mp"),
                 "--mountpath", str(work / f"t{i}" / "mp1"), "--cluster-secret-file",
                 str(work / "p" / "cluster.secret")], stdout=log, stderr=log))
        wait_targets(endpoint, TARGETS)
        request(f"{endpoint}/v1/cluster/set-config?keepalive.interval=1s&keepalive.timeout=3s", "PUT")
        print(f"moss redundancy cost: proxy + {TARGETS} targets on loopback, {os.cpu_count()} CPUs, "
              f"{WRITERS} writers (release build)")
        for cell, size, count in CELLS:
            print(f"\nPUT {count} x {cell}")
            for mode, props in [("off", None),
                                ("mir", {"mirror": {"enabled": True, "copies": 2}}),
                                ("rep", {"ec": {"enabled": True, "objsize_limit": size + 1}}),
                                ("ec", {"ec": {"enabled": True, "objsize_limit": 1}})]:
                bucket = f"{mode}-{cell.lower()}"
                request(f"{endpoint}/v1/buckets/{bucket}", "POST",
                        json.dumps({"action": "create-bck"}).encode())
                if props:
                    set_props(endpoint, bucket, props)
                secs = put_cell(endpoint, bucket, size, count)
                stored = disk_bytes(work, bucket) / (size * count)
                label = {"off": "no redundancy", "mir": "2-way mirror", "rep": "2 replicas",
                         "ec": "2+2 slices"}[mode]
                print(f"  {label:14} {count / secs:8.0f} obj/s {size * count / secs / 2**20:8.1f} MiB/s"
                      f"   on disk: {stored:.2f}x")

        bucket = "ec-64kib"
        names = [f"o-{k:05}" for k in range(BATCH_ENTRIES)]
        print(f"\nGetBatch of {BATCH_ENTRIES} x 64KiB from the 2+2 bucket (streaming)")
        rates = []
        for _ in range(3):
            secs, n, dt = batch(endpoint, bucket, names)
            rates.append(BATCH_ENTRIES / secs)
        print(f"  all targets up       {statistics.median(rates):8.0f} entries/s (median of 3)")
        victim = next(i for i, u in enumerate(target_urls) if u != dt)
        # Long enough to measure reads around the dead target while it is still in the map.
        request(f"{endpoint}/v1/cluster/set-config?keepalive.timeout=20s", "PUT")
        procs[1 + victim].send_signal(signal.SIGKILL)
        procs[1 + victim].wait()
        time.sleep(2.5)  # silent for two keepalives, still in the map
        secs, n, _ = batch(endpoint, bucket, names)
        print(f"  1 dead, still in map {BATCH_ENTRIES / secs:8.0f} entries/s (its entries rebuilt from slices)")
        rates = []
        for _ in range(3):
            secs, n, _ = batch(endpoint, bucket, names)
            rates.append(BATCH_ENTRIES / secs)
        print(f"  ... read around again {statistics.median(rates):7.0f} entries/s (median of 3; rebuilt copies"
              " now on the next targets)")
        wait_targets(endpoint, TARGETS - 1)
        secs, n, _ = batch(endpoint, bucket, names)
        print(f"  1 dead, map updated  {BATCH_ENTRIES / secs:8.0f} entries/s (repair running)")
        start = time.perf_counter()
        wait_rebalance(endpoint)
        print(f"  repair (rebalance + ec pass over all {len(CELLS) * 4} buckets) took {time.perf_counter() - start:.1f} s more")
        secs, n, _ = batch(endpoint, bucket, names)
        print(f"  1 dead, repaired     {BATCH_ENTRIES / secs:8.0f} entries/s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
