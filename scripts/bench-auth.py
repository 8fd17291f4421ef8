#!/usr/bin/env python3
"""What AuthN costs GetBatch: the same batches against `moss local` and `moss local --auth`.

Usage: .venv/bin/python scripts/bench-auth.py [path/to/moss]   (default target/release/moss)

For each mode it starts a fresh 3-target cluster, writes the objects, warms up, then times
ROUNDS rounds of BATCHES sequential streaming batches per cell, printing every round's rate and the
median. With auth the SDK client carries an admin token: the proxy verifies it and checks GET on
the bucket of every entry, signs the redirect with the body's SHA-256, and the DT checks that.
Numbers, not assertions: run it on a quiet machine and compare the two lines of a cell."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python" / "tests"))

from aistore.sdk import Client  # noqa: E402
from aistore.sdk.authn import AuthNClient  # noqa: E402

from helpers import LocalCluster  # noqa: E402

ROUNDS = 3
CELLS = [("10KiB", 10 << 10, 64, 150), ("1MiB", 1 << 20, 16, 30)]  # name, size, per batch, batches


def run_mode(binary: Path, auth: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--auth"] if auth else []
        env = {"AIS_AUTHN_SU_PASS": "bench-pass"} if auth else {}
        cluster = LocalCluster.start(binary, Path(tmp) / "data", targets=3, extra_args=extra, env_extra=env)
        try:
            endpoint = cluster.wait_for_endpoint(60)
            deadline = time.time() + 10
            while auth and cluster.authn_url is None and time.time() < deadline:
                time.sleep(0.05)
            token = AuthNClient(cluster.authn_url).login("admin", "bench-pass") if auth else None
            client = Client(endpoint, token=token, timeout=(5, 60))
            out = {}
            for name, size, per_batch, batches in CELLS:
                bucket = client.bucket(f"bench-{name.lower()}").create(exist_ok=True)
                payload = os.urandom(size)
                names = [f"o{i:04d}" for i in range(per_batch * 4)]
                for n in names:
                    bucket.object(n).get_writer().put_content(payload)
                rates = []
                for _ in range(ROUNDS + 1):  # the first round warms up
                    start = time.perf_counter()
                    for b in range(batches):
                        batch = client.batch(bucket=bucket)
                        for n in names[(b % 4) * per_batch : (b % 4 + 1) * per_batch]:
                            batch.add(n)
                        got = sum(len(content) for _, content in batch.get())
                        assert got == size * per_batch
                    rates.append(batches * per_batch / (time.perf_counter() - start))
                out[name] = rates[1:]
            return out
        finally:
            cluster.stop(grace=10)


def main() -> None:
    binary = Path(sys.argv[1] if len(sys.argv) > 1 else "target/release/moss").resolve()
    results = {mode: run_mode(binary, mode == "auth") for mode in ("plain", "auth")}
    for name, *_ in CELLS:
        for mode, cells in results.items():
            rates = cells[name]
            print(
                f"{name:>6} {mode:>5}: median {statistics.median(rates):8.0f} obj/s"
                f"   rounds {' '.join(f'{r:.0f}' for r in rates)}"
            )


if __name__ == "__main__":
    main()
