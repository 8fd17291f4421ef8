"""Mirroring through the real SDK: `moss local --mountpaths 2` (its own cluster, next to the
suite's), a bucket with `mirror.copies=2` (set-bprops over HTTP: the SDK 2.0 bucket has no
props setter), then one of every target's disks made unusable under the running cluster. The
SDK's object props show both copies; its reads and GetBatch get every byte from the copies."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from aistore.sdk import Client

from conftest import fast_fail_retry_config, unique_bucket_name
from helpers import LocalCluster, moss_binary, put_objects, rand_bytes

STARTUP_TIMEOUT_S = 60
TARGETS = 2


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """(endpoint, data directory) of a 2-target cluster with two mountpaths per target."""
    binary = moss_binary()
    if not binary.is_file():
        pytest.fail(f"moss binary not found at {binary}: run `cargo build` or set MOSS_BIN")
    data_dir = tmp_path_factory.mktemp("moss-mirror") / "data"
    cluster = LocalCluster.start(binary, data_dir, targets=TARGETS,
                                 extra_args=["--mountpaths", "2"])
    endpoint = cluster.wait_for_endpoint(STARTUP_TIMEOUT_S)
    if endpoint is None:
        cluster.stop(grace=5)
        pytest.fail("`moss local --mountpaths 2` printed no endpoint\n" + cluster.diagnostics(),
                    pytrace=False)
    yield endpoint, data_dir
    code, in_time = cluster.stop(grace=15)
    assert in_time and code == 0, f"moss local exit {code}\n" + cluster.diagnostics()


def wait_job(endpoint: str, job_id: str) -> None:
    client = Client(endpoint, timeout=(5, 30), retry_config=fast_fail_retry_config())
    client.job(job_id=job_id).wait(timeout=60)


def test_sdk_reads_and_batches_come_from_the_copies_when_a_disk_is_unusable(mirrored):
    endpoint, data_dir = mirrored
    client = Client(endpoint, timeout=(5, 30), retry_config=fast_fail_retry_config())
    bucket = client.bucket(unique_bucket_name("mirror")).create()
    contents = {f"m/{i:03}": rand_bytes(("mirror", i), 1000 + 997 * i) for i in range(40)}
    put_objects(bucket, contents)

    r = requests.patch(f"{endpoint}/v1/buckets/{bucket.name}",
                       json={"action": "set-bprops",
                             "value": {"mirror": {"enabled": True, "copies": 2}}},
                       timeout=30)
    assert r.status_code == 200, r.text
    wait_job(endpoint, r.text.strip())
    props = bucket.object("m/007").props
    assert props.mirror_copies == 2
    assert len(props.mirror_paths) == 2 and len(set(props.mirror_paths)) == 2

    # The second mountpath of every target stops working: its bucket directory becomes a file.
    lost = 0
    for i in range(TARGETS):
        mountpath = data_dir / f"target{i}" / "mp1"
        bucket_dir = mountpath / "@ais" / bucket.name
        bucket_dir.rename(mountpath / "lost")
        Path(bucket_dir).write_bytes(b"not a directory")
        lost += sum(1 for p in (mountpath / "lost" / "%ob").rglob("*") if p.is_file())
    assert 0 < lost < len(contents), lost

    for name, data in contents.items():
        assert bucket.object(name).get_reader().read_all() == data, name
    for streaming in (True, False):
        batch = client.batch(bucket=bucket, streaming_get=streaming)
        order = sorted(contents, reverse=True)
        for name in order:
            batch.add(name)
        got = list(batch.get())
        assert [out.obj_name for out, _ in got] == order, streaming
        for (out, data), name in zip(got, order):
            assert out.err_msg is None, (streaming, name)
            assert data == contents[name], (streaming, name)
