"""Remote (S3) buckets through the aistore SDK, as a user with data in S3 sees them: listing that
matches S3's own, cold/warm/latest GETs, write-through PUT and DELETE, prefetch and evict jobs,
GetBatch mixing s3:// and ais:// entries, and the error classes. Every test gets a fresh bucket in
the S3 emulator (moto, started by scripts/test.sh) and checks it against boto3's view."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from aistore.sdk import ArchiveConfig, ListObjectFlag
from aistore.sdk.batch.types import MossOut
from aistore.sdk.errors import AISError, ErrObjNotFound, ErrRemoteBckNotFound

from conftest import unique_bucket_name
from helpers import (
    PLACEHOLDER_DIR,
    chunks,
    entry_name,
    make_tar,
    put_objects,
    rand_bytes,
    read_tar,
    s3_get,
    s3_listing,
    s3_put_objects,
)

WAIT = 30  # seconds for a job
FLAG_CACHED = 1 << 6
FLAG_DIR = 1 << 8

MODES = pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "multipart"])


def dataset(s3, s3_bucket, n=10, prefix="obj-", size=lambda i: 100 + 37 * i):
    """n objects written straight into S3 with boto3 (nothing cached); returns {name: bytes}."""
    contents = {f"{prefix}{i:02d}": rand_bytes((s3_bucket, prefix, i), size(i)) for i in range(n)}
    s3_put_objects(s3, s3_bucket, contents)
    return contents


def listed(entries):
    return [(e.name, e.size) for e in entries]


def cached_names(bucket, prefix=""):
    """Names the cluster marks cached (64) in a `props="name,cached"` listing."""
    entries = bucket.list_all_objects(prefix=prefix, props="name,cached")
    for entry in entries:
        assert entry.is_ok(), (entry.name, entry.flags)
    return sorted(e.name for e in entries if e.is_cached())


def read(bucket, name, **kwargs) -> bytes:
    return bucket.object(name).get_reader(**kwargs).read_all()


def wait_present(obj, timeout=2.0):
    """Polls HEAD until the object is in the cluster."""
    deadline = time.monotonic() + timeout
    while not obj.head().present:
        assert time.monotonic() < deadline, f"{obj.name} not present {timeout}s after its GET"
        time.sleep(0.01)


def fetch(bucket, name) -> bytes:
    """GET that leaves the object cached, for tests about what comes after: it also waits for
    the cold GET's commit, so those tests do not hinge on its timing (whether the object is
    cached the moment the read returns is test_cold_get_caches_before_the_read_returns's job)."""
    data = read(bucket, name)
    wait_present(bucket.object(name))
    return data


def wait_ok(client, job_id):
    assert job_id and isinstance(job_id, str), repr(job_id)
    result = client.job(job_id=job_id).wait(timeout=WAIT, verbose=False)
    assert result.success, result
    return result


# --------------------------------------------------------------------------------------------
# listing


def test_listing_equals_s3_across_pages(s3, s3_bucket, remote_bucket):
    """25 objects in pages of 7 under S3's own continuation tokens: 7, 7, 7, 4 entries whose
    names, order and sizes are exactly boto3's; list_all_objects and the iterator agree."""
    dataset(s3, s3_bucket, n=25, size=lambda i: 1 + (i * 997) % 5000)
    expected = s3_listing(s3, s3_bucket)
    assert len(expected) == 25

    pages, uuid, token = [], "", ""
    while True:
        page = remote_bucket.list_objects(page_size=7, uuid=uuid, continuation_token=token)
        pages.append(listed(page.entries))
        uuid, token = page.uuid, page.continuation_token
        if not token:
            break
        assert len(pages) < 10, "the listing never ends"
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [item for p in pages for item in p] == expected

    assert listed(remote_bucket.list_all_objects(page_size=7)) == expected
    assert listed(remote_bucket.list_all_objects()) == expected
    assert listed(remote_bucket.list_objects_iter(page_size=4)) == expected
    # the default listing (props "") carries no cached flags and no dirs
    assert all(e.flags & (FLAG_CACHED | FLAG_DIR) == 0 for e in remote_bucket.list_all_objects())


def test_listing_with_prefix(s3, s3_bucket, remote_bucket):
    """A prefix lists exactly S3's keys under it; an unknown prefix lists nothing."""
    dataset(s3, s3_bucket, n=4, prefix="train/")
    dataset(s3, s3_bucket, n=3, prefix="val/")
    dataset(s3, s3_bucket, n=2, prefix="train-extra/")
    for prefix in ("train/", "val/", "train", "val/01"):
        got = listed(remote_bucket.list_all_objects(prefix=prefix, page_size=2))
        assert got == s3_listing(s3, s3_bucket, prefix=prefix), prefix
    assert [e.name for e in remote_bucket.list_all_objects(prefix="val/")] == [
        "val/00", "val/01", "val/02"]
    assert remote_bucket.list_all_objects(prefix="nothing-here/") == []


def test_listing_no_recursion_gives_dirs(s3, s3_bucket, remote_bucket):
    """NO_RECURSION lists one level: top-level objects plus one dir entry (flag 256) per prefix."""
    s3_put_objects(s3, s3_bucket, {
        "top.txt": b"top",
        "a/1": b"1",
        "a/2": b"22",
        "b/deep/x": b"x",
        "zz.bin": b"zz",
    })
    entries = remote_bucket.list_all_objects(flags=[ListObjectFlag.NO_RECURSION])
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == ["a/", "b/", "top.txt", "zz.bin"]
    assert by_name["a/"].flags & FLAG_DIR and by_name["b/"].flags & FLAG_DIR
    assert not by_name["top.txt"].flags & FLAG_DIR and not by_name["zz.bin"].flags & FLAG_DIR
    assert by_name["top.txt"].size == 3 and by_name["zz.bin"].size == 2
    # one level down under a prefix
    inner = remote_bucket.list_all_objects(prefix="b/", flags=[ListObjectFlag.NO_RECURSION])
    assert [(e.name, bool(e.flags & FLAG_DIR)) for e in inner] == [("b/deep/", True)]


def test_cached_flags_before_and_after_get(s3, s3_bucket, remote_bucket):
    """props="name,cached" marks only what a GET brought into the cluster; the default listing
    never marks anything (AIStore's remote-only shortcut); CACHED lists only in-cluster objects."""
    contents = dataset(s3, s3_bucket, n=6)
    names = sorted(contents)
    assert cached_names(remote_bucket) == []
    entries = remote_bucket.list_all_objects(props="name,cached")
    assert [e.name for e in entries] == names

    for name in (names[1], names[4]):
        assert fetch(remote_bucket, name) == contents[name]
    assert cached_names(remote_bucket) == [names[1], names[4]]
    assert all(not e.is_cached() for e in remote_bucket.list_all_objects())
    assert listed(remote_bucket.list_all_objects()) == s3_listing(s3, s3_bucket)

    only_cached = remote_bucket.list_all_objects(flags=[ListObjectFlag.CACHED])
    assert [e.name for e in only_cached] == [names[1], names[4]]
    assert all(e.is_cached() for e in only_cached)


# --------------------------------------------------------------------------------------------
# GET: cold, warm, latest


def test_cold_get_caches_before_the_read_returns(s3, s3_bucket, remote_bucket):
    """A cold GET returns S3's bytes, and once the reader has them the object is in the cluster:
    head().present is False before and True right after (AIStore's cold GET stores the object
    before it sends the first byte). 96 objects of 1 MiB read 8 at a time, as a data loader
    would, so that a commit racing the reader shows."""
    contents = dataset(s3, s3_bucket, n=96, prefix="cold-", size=lambda i: (1 << 20) + i)
    names = sorted(contents)
    for name in names[:3]:
        before = remote_bucket.object(name).head()
        assert before.present is False
        assert before.size == len(contents[name])

    def cold_read(name):
        obj = remote_bucket.object(name)
        assert obj.get_reader().read_all() == contents[name], name
        return obj.head().present

    with ThreadPoolExecutor(max_workers=8) as pool:
        present = dict(zip(names, pool.map(cold_read, names)))
    late = sorted(n for n, p in present.items() if not p)
    assert late == [], (
        f"HEAD right after a complete cold GET says present=False for {len(late)} of "
        f"{len(names)} objects {late[:8]}...: the object is committed only after the reader "
        f"got its last byte"
    )
    for name in names[:3]:
        wait_present(remote_bucket.object(name))
        assert remote_bucket.object(name).head().size == len(contents[name])
        assert read(remote_bucket, name) == contents[name]  # warm


def test_range_read_of_cold_object(s3, s3_bucket, remote_bucket):
    """A range read of an object not in the cluster returns exactly those bytes."""
    data = rand_bytes("ranged", 10_000)
    s3.put_object(Bucket=s3_bucket, Key="ranged.bin", Body=data)
    obj = remote_bucket.object("ranged.bin")
    assert obj.head().present is False
    assert obj.get_reader(byte_range="bytes=100-1099").read_all() == data[100:1100]
    assert obj.get_reader(byte_range="bytes=-16").read_all() == data[-16:]
    assert obj.get_reader(byte_range="bytes=9990-").read_all() == data[9990:]
    assert obj.get_reader().read_all() == data


def test_archpath_from_cold_shard(s3, s3_bucket, remote_bucket):
    """A file inside a TAR shard uploaded with boto3 reads by archpath on the first (cold) GET."""
    members = [("a.txt", b"alpha"), ("dir/b.bin", rand_bytes("b", 4096)), ("c.json", b'{"c":3}')]
    shard = make_tar(members)
    s3.put_object(Bucket=s3_bucket, Key="shards/s-0.tar", Body=shard)
    obj = remote_bucket.object("shards/s-0.tar")
    assert obj.head().present is False
    got = obj.get_reader(archive_config=ArchiveConfig(archpath="dir/b.bin")).read_all()
    assert got == members[1][1]
    assert obj.get_reader(archive_config=ArchiveConfig(archpath="c.json")).read_all() == b'{"c":3}'
    assert obj.get_reader().read_all() == shard
    assert [(m.name, m.data) for m in read_tar(shard)] == members


def test_warm_get_ignores_out_of_band_overwrite_until_latest(s3, s3_bucket, remote_bucket):
    """After boto3 overwrites a cached object, a plain GET still serves the cached bytes;
    latest=True fetches the new ones, and from then on the cache holds them."""
    v1, v2 = rand_bytes("v1", 2000), rand_bytes("v2", 3333)
    s3.put_object(Bucket=s3_bucket, Key="doc", Body=v1)
    assert fetch(remote_bucket, "doc") == v1
    s3.put_object(Bucket=s3_bucket, Key="doc", Body=v2)
    assert read(remote_bucket, "doc") == v1
    assert remote_bucket.object("doc").head().size == len(v1)
    assert read(remote_bucket, "doc", latest=True) == v2
    assert read(remote_bucket, "doc") == v2
    assert remote_bucket.object("doc").head().size == len(v2)


def test_out_of_band_delete_warm_get_served_latest_is_not_found(s3, s3_bucket, remote_bucket):
    """After boto3 deletes a cached object, a plain GET still serves it; latest=True is a 404
    ErrObjNotFound naming s3://bucket/object."""
    data = rand_bytes("gone", 1500)
    s3.put_object(Bucket=s3_bucket, Key="gone.bin", Body=data)
    assert fetch(remote_bucket, "gone.bin") == data
    s3.delete_object(Bucket=s3_bucket, Key="gone.bin")
    assert read(remote_bucket, "gone.bin") == data
    with pytest.raises(ErrObjNotFound) as err:
        read(remote_bucket, "gone.bin", latest=True)
    assert err.value.status_code == 404
    assert f"s3://{s3_bucket}/gone.bin" in err.value.message


def test_get_missing_object_is_obj_not_found(s3_bucket, remote_bucket):
    with pytest.raises(ErrObjNotFound) as err:
        read(remote_bucket, "never-was")
    assert err.value.status_code == 404
    assert f"s3://{s3_bucket}/never-was" in err.value.message
    with pytest.raises(AISError) as err:
        remote_bucket.object("never-was").head()
    assert err.value.status_code == 404


# --------------------------------------------------------------------------------------------
# PUT and DELETE go through to S3


def test_put_writes_through(s3, s3_bucket, remote_bucket):
    """An SDK PUT is in S3 at once, byte for byte, and cached in the cluster."""
    contents = {f"up/{i}": rand_bytes(("up", i), 10 + 5000 * i) for i in range(4)}
    put_objects(remote_bucket, contents)
    for name, data in contents.items():
        assert s3_get(s3, s3_bucket, name) == data, name
        assert remote_bucket.object(name).head().present is True
    assert s3_listing(s3, s3_bucket) == [(n, len(d)) for n, d in sorted(contents.items())]
    assert cached_names(remote_bucket) == sorted(contents)
    # overwrite through the SDK: S3 and the cluster both see the new bytes
    remote_bucket.object("up/0").get_writer().put_content(b"second")
    assert s3_get(s3, s3_bucket, "up/0") == b"second"
    assert read(remote_bucket, "up/0", latest=True) == b"second"


def test_delete_removes_from_s3_and_cluster(s3, s3_bucket, remote_bucket):
    """SDK delete of a cached and of a never-cached object removes both from S3's view."""
    contents = dataset(s3, s3_bucket, n=3)
    assert fetch(remote_bucket, "obj-00") == contents["obj-00"]
    remote_bucket.object("obj-00").delete()
    remote_bucket.object("obj-01").delete()
    assert s3_listing(s3, s3_bucket) == [("obj-02", len(contents["obj-02"]))]
    assert [e.name for e in remote_bucket.list_all_objects()] == ["obj-02"]
    with pytest.raises(ErrObjNotFound):
        read(remote_bucket, "obj-00")
    with pytest.raises(ErrObjNotFound):
        read(remote_bucket, "obj-01")


# --------------------------------------------------------------------------------------------
# prefetch / evict jobs


def test_prefetch_by_list(client, s3, s3_bucket, remote_bucket):
    contents = dataset(s3, s3_bucket, n=10)
    chosen = ["obj-02", "obj-05", "obj-09"]
    wait_ok(client, remote_bucket.objects(obj_names=chosen).prefetch())
    assert cached_names(remote_bucket) == chosen
    for name in chosen:
        assert remote_bucket.object(name).head().present is True
        assert read(remote_bucket, name) == contents[name]


def test_prefetch_by_template(client, s3, s3_bucket, remote_bucket):
    """A prefix template prefetches everything under the prefix; a brace range exactly its names."""
    dataset(s3, s3_bucket, n=5, prefix="keep/")
    dataset(s3, s3_bucket, n=5, prefix="skip/")
    wait_ok(client, remote_bucket.objects(obj_template="keep/").prefetch())
    assert cached_names(remote_bucket) == [f"keep/{i:02d}" for i in range(5)]
    wait_ok(client, remote_bucket.objects(obj_template="skip/{01..03}").prefetch())
    assert cached_names(remote_bucket, prefix="skip/") == ["skip/01", "skip/02", "skip/03"]


def test_prefetch_of_missing_name_fails_the_job(client, s3, s3_bucket, remote_bucket):
    """A listed name S3 lacks is an error of the job (wait() reports failure); the rest arrive."""
    dataset(s3, s3_bucket, n=3)
    job_id = remote_bucket.objects(obj_names=["obj-00", "no-such-key", "obj-02"]).prefetch()
    result = client.job(job_id=job_id).wait(timeout=WAIT, verbose=False)
    assert result.success is False, result
    assert cached_names(remote_bucket) == ["obj-00", "obj-02"]


def test_evict_by_list(client, s3, s3_bucket, remote_bucket):
    """Evict removes only the cluster's copies: listing still shows all, S3 keeps all, and an
    evicted object cold-GETs again."""
    contents = dataset(s3, s3_bucket, n=8)
    wait_ok(client, remote_bucket.objects(obj_template="obj-").prefetch())
    assert cached_names(remote_bucket) == sorted(contents)
    evicted = ["obj-01", "obj-03", "obj-06"]
    wait_ok(client, remote_bucket.objects(obj_names=evicted).evict())
    assert cached_names(remote_bucket) == sorted(set(contents) - set(evicted))
    assert [e.name for e in remote_bucket.list_all_objects(props="name,cached")] == sorted(contents)
    assert len(s3_listing(s3, s3_bucket)) == 8
    assert remote_bucket.object("obj-03").head().present is False
    assert fetch(remote_bucket, "obj-03") == contents["obj-03"]


def test_evict_right_after_cold_get(client, s3, s3_bucket, remote_bucket):
    """Evicting objects the user has just read: every job succeeds and the objects stay evicted
    (a cold GET's commit landing after the eviction fails the job and brings the object back)."""
    contents = dataset(s3, s3_bucket, n=12, size=lambda i: (1 << 20) + i)

    def read_then_evict(name):
        assert read(remote_bucket, name) == contents[name], name
        return remote_bucket.objects(obj_names=[name]).evict()

    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = dict(zip(sorted(contents), pool.map(read_then_evict, sorted(contents))))
    failed = {}
    for name, job_id in jobs.items():
        result = client.job(job_id=job_id).wait(timeout=WAIT, verbose=False)
        if not result.success:
            failed[name] = result.error
    time.sleep(0.2)
    still_cached = cached_names(remote_bucket)
    assert (failed, still_cached) == ({}, []), (
        f"evict right after a cold GET: failed jobs {failed}, cached afterwards {still_cached}"
    )


def test_delete_objects_job(client, s3, s3_bucket, remote_bucket):
    """bucket.objects(...).delete() removes from S3 too, cached or not."""
    contents = dataset(s3, s3_bucket, n=6)
    fetch(remote_bucket, "obj-01")
    wait_ok(client, remote_bucket.objects(obj_names=["obj-01", "obj-04"]).delete())
    left = sorted(set(contents) - {"obj-01", "obj-04"})
    assert [k for k, _ in s3_listing(s3, s3_bucket)] == left
    assert [e.name for e in remote_bucket.list_all_objects()] == left


def test_bucket_evict_keep_md(client, s3, s3_bucket, remote_bucket):
    """evict(keep_md=True) drops every cached object but the bucket keeps working; a full evict
    too (the next access adds the bucket again)."""
    contents = dataset(s3, s3_bucket, n=5)
    wait_ok(client, remote_bucket.objects(obj_template="obj-").prefetch())
    assert cached_names(remote_bucket) == sorted(contents)

    remote_bucket.evict(keep_md=True)
    assert cached_names(remote_bucket) == []
    assert listed(remote_bucket.list_all_objects()) == s3_listing(s3, s3_bucket)
    assert remote_bucket.head() is not None
    assert remote_bucket.object("obj-02").head().present is False
    assert fetch(remote_bucket, "obj-02") == contents["obj-02"]
    assert cached_names(remote_bucket) == ["obj-02"]

    remote_bucket.evict()
    assert cached_names(remote_bucket) == []
    assert fetch(remote_bucket, "obj-04") == contents["obj-04"]
    assert cached_names(remote_bucket) == ["obj-04"]


# --------------------------------------------------------------------------------------------
# GetBatch


@MODES
def test_batch_mixes_remote_and_ais_objects(client, s3, s3_bucket, remote_bucket, bucket, streaming):
    """~50 S3 objects (every third cached, the rest cold) interleaved with ais:// objects in one
    batch: every entry in request order with its exact bytes."""
    remote = dataset(s3, s3_bucket, n=50, prefix="r/", size=lambda i: 1 + (i * 311) % 4000)
    local = {f"l/{i}": rand_bytes(("local", i), 500 + i) for i in range(10)}
    put_objects(bucket, local)
    remote_names = sorted(remote)
    for name in remote_names[::3]:
        assert fetch(remote_bucket, name) == remote[name]
    assert cached_names(remote_bucket) == remote_names[::3]

    order = []  # (bucket, name, bytes)
    for i, name in enumerate(reversed(remote_names)):
        order.append((remote_bucket, name, remote[name]))
        if i % 5 == 0:
            local_name = f"l/{i // 5}"
            order.append((bucket, local_name, local[local_name]))
    assert len(order) == 60

    batch = client.batch(streaming_get=streaming, cont_on_err=False)
    for bck, name, _ in order:
        batch.add(bck.object(name))
    results = list(batch.get())
    assert len(results) == len(order)
    for (bck, name, data), (out, content) in zip(order, results):
        assert isinstance(out, MossOut)
        assert (out.bucket, out.obj_name) == (bck.name, name)
        assert content == data, name
        assert out.err_msg is None
        if not streaming:
            assert out.provider == ("aws" if bck is remote_bucket else "ais")
            assert out.size == len(data)
    # moss cold-fetches the uncached entries through the cluster, so now all are cached
    assert cached_names(remote_bucket) == remote_names


def test_batch_member_names_for_remote_entries(client, s3, s3_bucket, remote_bucket):
    """Archive members of s3:// entries are named `<bucket>/<object>` like ais ones."""
    remote = dataset(s3, s3_bucket, n=3)
    batch = client.batch(bucket=remote_bucket)
    for name in sorted(remote):
        batch.add(name)
    raw = batch.get(raw=True)
    try:
        members = read_tar(raw)
    finally:
        raw.close()
    assert [(m.name, m.data) for m in members] == [
        (entry_name(s3_bucket, n), remote[n]) for n in sorted(remote)
    ]


@MODES
def test_batch_strict_mode_missing_remote_object(client, s3, s3_bucket, remote_bucket, streaming):
    """cont_on_err=False: a name S3 lacks fails the whole batch with ErrObjNotFound (404)."""
    dataset(s3, s3_bucket, n=2)
    batch = client.batch(bucket=remote_bucket, streaming_get=streaming, cont_on_err=False)
    batch.add("obj-00").add("missing.bin").add("obj-01")
    received = []
    with pytest.raises(ErrObjNotFound) as err:
        for entry in batch.get():
            received.append(entry)
    assert received == []
    assert err.value.status_code == 404
    assert f"s3://{s3_bucket}/missing.bin" in err.value.message


@MODES
def test_batch_cont_on_err_missing_remote_object(client, s3, s3_bucket, remote_bucket, streaming):
    """cont_on_err=True: the missing name is an empty placeholder entry in its slot."""
    contents = dataset(s3, s3_bucket, n=2)
    batch = client.batch(bucket=remote_bucket, streaming_get=streaming, cont_on_err=True)
    batch.add("obj-00").add("missing.bin").add("obj-01")
    results = list(batch.get())
    assert [out.obj_name for out, _ in results] == ["obj-00", "missing.bin", "obj-01"]
    assert results[0][1] == contents["obj-00"] and results[0][0].err_msg is None
    assert results[2][1] == contents["obj-01"] and results[2][0].err_msg is None
    assert results[1][1] == b""
    assert results[1][0].err_msg, results[1][0]
    if not streaming:
        assert results[1][0].size == 0

    batch = client.batch(bucket=remote_bucket, cont_on_err=True)
    batch.add("missing.bin").add("obj-01")
    raw = batch.get(raw=True)
    try:
        names = [m.name for m in read_tar(raw)]
    finally:
        raw.close()
    assert names == [f"{PLACEHOLDER_DIR}/{s3_bucket}/missing.bin", f"{s3_bucket}/obj-01"]


def test_batch_iter_dataset_flow_over_s3_bucket(client, s3, s3_bucket, remote_bucket):
    """What aistore.pytorch.AISBatchIterDataset does (the plugin itself needs torch, which the
    test venv does not have): list_all_objects_iter over the s3:// bucket, batches of 32 Objects
    through client.batch(objects=..., cont_on_err=False). Every object comes once, exact bytes."""
    contents = dataset(s3, s3_bucket, n=70, prefix="ds/", size=lambda i: 64 + i * 13)
    fetch(remote_bucket, "ds/10")  # one cached, the rest cold
    seen = {}
    objects = list(remote_bucket.list_all_objects_iter(prefix=""))
    assert [o.name for o in objects] == sorted(contents)
    for group in chunks(objects, 32):
        for out, data in client.batch(objects=list(group), cont_on_err=False).get():
            assert not out.err_msg, out
            assert out.obj_name not in seen, f"{out.obj_name} twice"
            seen[out.obj_name] = data
    assert seen == contents


# --------------------------------------------------------------------------------------------
# a bucket S3 does not have


def test_missing_s3_bucket_is_remote_bucket_not_found(client):
    name = unique_bucket_name("moss-pyt-none")
    missing = client.bucket(name, provider="aws")
    with pytest.raises(ErrRemoteBckNotFound) as err:
        missing.list_objects()
    assert err.value.status_code == 404
    assert f"s3://{name}" in err.value.message
    with pytest.raises(ErrRemoteBckNotFound):
        missing.object("x").get_reader().read_all()
    with pytest.raises(AISError) as head_err:
        missing.head()
    assert head_err.value.status_code == 404
    batch = client.batch(bucket=missing, cont_on_err=True)
    batch.add("x")
    with pytest.raises(ErrRemoteBckNotFound):
        list(batch.get())
