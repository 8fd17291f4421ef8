"""Jobs through the aistore SDK, as its own integration tests drive them: start / wait / abort /
status / listing of jobs, GetBatch as a job, and the operations that run as jobs — delete, copy
and archive of object groups, bucket copy, rename, summary and info."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from aistore.sdk.const import GO_ZERO_TIME
from aistore.sdk.enums import Colocation, FLTPresence
from aistore.sdk.errors import AISError, ErrBckNotFound, JobInfoNotFound

from helpers import assert_error_body, put_objects, rand_bytes, raw_request, read_tar

WAIT = 30  # seconds, as the SDK's own tests wait (probing every second)


def objects(bucket, n=10, size=10 * 1024, prefix="obj-"):
    """n objects of known content; returns {name: bytes}."""
    contents = {f"{prefix}{i:02d}": rand_bytes((bucket.name, i), size) for i in range(n)}
    put_objects(bucket, contents)
    return contents


def names_in(bucket, prefix=""):
    return sorted(e.name for e in bucket.list_all_objects(prefix=prefix))


def action(endpoint, method, bucket, act, value, query=""):
    url = f"{endpoint}/v1/buckets/{bucket}?provider=ais{query}"
    body = json.dumps({"action": act, "name": "", "value": value}).encode()
    return raw_request(method, url, body)


def assert_no_bucket(bucket):
    """HEAD answers 404 (the SDK cannot tell which error from a HEAD: no body)."""
    with pytest.raises(AISError) as info:
        bucket.head()
    assert info.value.status_code == 404


def get_batch_ids(client):
    return {s.id for s in client.job(job_kind="get-batch").get_details().list_snapshots()}


# --------------------------------------------------------------------------------------------
# the job API


def test_start_lru_and_wait(client):
    job_id = client.job(job_kind="lru").start()
    assert job_id and " " not in job_id
    result = client.job(job_id=job_id).wait(timeout=WAIT)
    assert result.success, result
    assert result.error == ""
    status = client.job(job_id=job_id).status()
    assert status.uuid == job_id
    assert status.end_time != 0 and not status.aborted


def test_wait_dispatches_terminal_kinds_through_status(client):
    job_id = client.job(job_kind="lru").start()
    assert client.job(job_id=job_id, job_kind="lru").wait(timeout=WAIT).success
    assert client.job(job_id=job_id, job_kind="lru").status().end_time != 0


def test_get_within_timeframe(client):
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    job_id = client.job(job_kind="lru").start()
    client.job(job_id=job_id).wait(timeout=WAIT)
    end = datetime.now(timezone.utc) + timedelta(seconds=1)
    found = client.job(job_id=job_id).get_within_timeframe(start_time=start, end_time=end)
    assert job_id in {snap.id for snap in found}
    snap = found[0]
    assert snap.end_time != GO_ZERO_TIME
    with pytest.raises(JobInfoNotFound):
        client.job(job_kind="lru").get_within_timeframe(start_time=end + timedelta(hours=1))


def test_list_jobs_status_filters_by_kind(client):
    first = client.job(job_kind="lru").start()
    second = client.job(job_kind="lru").start()
    cleanup = client.job(job_kind="cleanup").start()  # a display name
    every = {s.uuid for s in client.cluster().list_jobs_status()}
    assert {first, second, cleanup} <= every
    lru_only = {s.uuid for s in client.cluster().list_jobs_status(job_kind="lru")}
    assert {first, second} <= lru_only
    assert cleanup not in lru_only
    assert client.job(job_id=cleanup).wait(timeout=WAIT).success


def test_unknown_jobs_and_kinds(client, endpoint):
    with pytest.raises(AISError) as info:
        client.job(job_id="NoSuchJob42").get_details()
    assert info.value.status_code == 404
    with pytest.raises(AISError) as info:
        client.job(job_id="NoSuchJob42").status()
    assert info.value.status_code == 404
    # a kind-only query with nothing to show is an empty answer, never an error
    details = client.job(job_kind="rechunk").get_details()
    assert details.list_snapshots() == []
    with pytest.raises(AISError) as info:
        client.job(job_kind="no-such-kind").start()
    assert info.value.status_code == 400
    assert "invalid xaction (job) kind" in info.value.message
    with pytest.raises(AISError) as info:
        client.job(job_kind="copy-bck").start()
    assert info.value.status_code == 400
    body = json.dumps({"action": "stop", "value": {"ID": "bad id!", "Kind": ""}}).encode()
    resp = raw_request("PUT", f"{endpoint}/v1/cluster", body)
    assert "invalid xaction (job) UUID" in assert_error_body(resp, 400)["message"]
    # a well-formed id nobody knows: nothing to stop, and that is fine
    client.job(job_id="NoSuchJob42").abort()


# --------------------------------------------------------------------------------------------
# GetBatch as a job


def run_batch(client, bucket, names, colocation=Colocation.NONE):
    batch = client.batch(bucket=bucket, colocation=colocation)
    for name in names:
        batch.add(name)
    return [(out.obj_name, data) for out, data in batch.get()]


def new_get_batch_id(client, before, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = get_batch_ids(client) - before
        if new:
            assert len(new) == 1, new
            return new.pop()
        time.sleep(0.2)
    raise AssertionError("no new get-batch job appeared")


def test_get_batch_runs_in_a_job_that_idles(client, bucket):
    contents = objects(bucket)
    before = get_batch_ids(client)
    got = run_batch(client, bucket, sorted(contents))
    assert [name for name, _ in got] == sorted(contents)
    job_id = new_get_batch_id(client, before)
    assert job_id.startswith("gbt-")
    snaps = client.job(job_id=job_id).get_details().list_snapshots()
    assert snaps and all(s.kind == "get-batch" for s in snaps)
    # the designated target counted every entry it served; senders count what they sent
    assert sum(s.stats.objects for s in snaps) == len(contents)
    assert sum(s.stats.in_objects for s in snaps) == sum(s.stats.out_objects for s in snaps)
    assert all(s.end_time == GO_ZERO_TIME for s in snaps), "a get-batch job idles, it does not end"
    assert f"get-batch[{job_id}]" in client.cluster().list_running_jobs(job_kind="get-batch")
    result = client.job(job_id=job_id, job_kind="get-batch").wait(timeout=WAIT)
    assert result.success, result
    # the same request again goes to the same designated target (colocation), whose running job
    # for this bucket takes it: no new job
    names = sorted(contents)[:3]
    run_batch(client, bucket, names, Colocation.TARGET_AWARE)
    first = get_batch_ids(client) - before
    run_batch(client, bucket, names, Colocation.TARGET_AWARE)
    assert get_batch_ids(client) - before == first


def test_aborting_an_idle_get_batch_job(client, bucket):
    contents = objects(bucket)
    before = get_batch_ids(client)
    run_batch(client, bucket, sorted(contents))
    job = client.job(job_id=new_get_batch_id(client, before), job_kind="get-batch")
    job.abort()
    result = job.wait(timeout=WAIT)
    assert not result.success
    assert result.error == "user abort"
    snaps = job.get_details().list_snapshots()
    assert any(s.aborted and s.abort_err == "user abort" for s in snaps)
    # the next request gets a fresh job, and it works
    assert [n for n, _ in run_batch(client, bucket, ["obj-00"])] == ["obj-00"]
    assert len(get_batch_ids(client) - before) == 2


def test_aborting_a_get_batch_job_while_it_streams(client, bucket):
    big = {f"big-{i:02d}": rand_bytes(("big", i), 2 << 20) for i in range(12)}
    put_objects(bucket, big)
    before = get_batch_ids(client)
    batch = client.batch(bucket=bucket)
    for name in sorted(big):
        batch.add(name)
    received = []
    outcome = {}

    def drain_slowly():
        try:
            for out, data in batch.get():
                received.append((out.obj_name, len(data)))
                time.sleep(0.3)
            outcome["finished"] = True
        except Exception as err:  # the transfer is cut: what an aborted stream looks like
            outcome["error"] = err

    reader = threading.Thread(target=drain_slowly)
    reader.start()
    job = client.job(job_id=new_get_batch_id(client, before), job_kind="get-batch")
    snaps = job.get_details().list_snapshots()
    assert all(s.end_time == GO_ZERO_TIME for s in snaps), "running while the stream is read"
    job.abort()
    result = job.wait(timeout=WAIT)
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert not result.success and result.error
    # whatever arrived before the cut is whole and in order; the stream did not end normally
    assert "error" in outcome, f"the stream was not cut: {len(received)} items arrived"
    assert received == [(n, 2 << 20) for n in sorted(big)[: len(received)]]
    assert len(received) < len(big)


# --------------------------------------------------------------------------------------------
# object groups


def test_delete_by_names_waits_for_the_job(client, bucket):
    contents = objects(bucket)
    names = sorted(contents)
    assert names_in(bucket, "obj-") == names
    job_id = bucket.objects(obj_names=names[1:]).delete()
    result = client.job(job_id=job_id).wait(timeout=WAIT)
    assert result.success and not result.error, result
    assert names_in(bucket) == names[:1]


def test_delete_of_a_missing_listed_name_is_a_job_error(client, bucket):
    objects(bucket, n=2)
    job_id = bucket.objects(obj_names=["obj-00", "not-there"]).delete()
    result = client.job(job_id=job_id).wait(timeout=WAIT)
    assert not result.success
    assert "not-there does not exist" in result.error
    assert names_in(bucket) == ["obj-01"]


def test_delete_by_template_and_prefix(client, bucket):
    objects(bucket, n=20)
    objects(bucket, n=3, prefix="keep/")
    job_id = bucket.objects(obj_template="obj-{00..09}").delete()
    assert client.job(job_id=job_id).wait(timeout=WAIT).success
    assert names_in(bucket, "obj-") == [f"obj-{i:02d}" for i in range(10, 20)]
    # a range selects what is there: names beyond the objects are not errors
    job_id = bucket.objects(obj_template="obj-{10..99}").delete()
    assert client.job(job_id=job_id).wait(timeout=WAIT).success
    assert names_in(bucket) == ["keep/00", "keep/01", "keep/02"]
    job_id = bucket.objects(obj_template="keep/").delete()
    assert client.job(job_id=job_id).wait(timeout=WAIT).success
    assert names_in(bucket) == []


def test_copy_objects_is_an_idle_kind(client, make_bucket):
    src, dst = make_bucket("src"), make_bucket("dst")
    contents = objects(src)
    names = sorted(contents)
    job_ids = src.objects(obj_names=names[1:5]).copy(dst, prepend="prefix-", num_workers=3)
    assert job_ids and all(i.startswith("tco-") for i in job_ids)
    for job_id in job_ids:
        result = client.job(job_id=job_id, job_kind="copy-listrange").wait_for_idle(timeout=WAIT)
        assert result.success, result
        snaps = client.job(job_id=job_id).get_details()
        assert snaps.get_num_workers() == 3
    copied = names_in(dst)
    assert copied == [f"prefix-{n}" for n in names[1:5]]
    for name in names[1:5]:
        assert dst.object(f"prefix-{name}").get_reader().read_all() == contents[name]
    # idle, not finished: it is still listed as running
    running = client.cluster().list_running_jobs(job_kind="copy-listrange")
    assert f"copy-listrange[{job_ids[0]}]" in running
    assert not any(r.startswith("copy-listrange[") for r in client.cluster().list_running_jobs(job_kind="lru"))


def test_copy_objects_to_a_new_bucket_creates_it(client, bucket):
    objects(bucket, n=3)
    dst = client.bucket(f"{bucket.name}-new")
    try:
        job_ids = bucket.objects(obj_template="obj-{00..02}").copy(dst)
        for job_id in job_ids:
            assert client.job(job_id=job_id, job_kind="copy-listrange").wait(timeout=WAIT).success
        assert names_in(dst) == ["obj-00", "obj-01", "obj-02"]
    finally:
        dst.delete(missing_ok=True)


@pytest.mark.parametrize("ext,reader", [(".tar", "tar"), (".tgz", "tar"), (".tar.lz4", "lz4"), (".zip", "zip")])
def test_archive_objects_in_the_order_given(client, make_bucket, ext, reader):
    src, dst = make_bucket("src"), make_bucket("dst")
    contents = objects(src, n=8)
    order = ["obj-05", "obj-01", "obj-07", "obj-03"]
    archname = f"shard-{ext.strip('.').replace('.', '-')}{ext}"
    job_ids = src.objects(obj_names=order).archive(archname, to_bck=dst, include_source_name=True)
    for job_id in job_ids:
        assert client.job(job_id=job_id, job_kind="archive").wait_for_idle(timeout=WAIT).success
    data = dst.object(archname).get_reader().read_all()
    expected = [(f"{src.name}/{n}", contents[n]) for n in order]
    assert members_of(data, reader) == expected
    # the shard is readable by GetBatch archpath, member by member
    batch = client.batch(bucket=dst)
    batch.add(archname, archpath=f"{src.name}/obj-07")
    [(out, got)] = list(batch.get())
    assert got == contents["obj-07"]


def members_of(data, reader):
    if reader == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [(i.filename, archive.read(i)) for i in archive.infolist()]
    if reader == "lz4":
        import subprocess  # the lz4 CLI (installed by scripts/test.sh) decodes the frame

        plain = subprocess.run(["lz4", "-dc"], input=data, capture_output=True, check=True).stdout
        data = plain
    return [(m.name, m.data) for m in read_tar(data) if m.is_file]


def test_archive_same_bucket_template_prefix_and_append(client, bucket):
    contents = objects(bucket, n=6)
    job_ids = bucket.objects(obj_template="obj-{00..02}").archive("a.tar")
    for job_id in job_ids:
        assert client.job(job_id=job_id, job_kind="archive").wait_for_idle(timeout=WAIT).success
    first = [(m.name, m.data) for m in read_tar(bucket.object("a.tar").get_reader().read_all())]
    assert first == [(n, contents[n]) for n in ["obj-00", "obj-01", "obj-02"]]
    # append what a prefix selects (names in listing order)
    job_ids = bucket.objects(obj_template="obj-0").archive("a.tar", allow_append=True)
    for job_id in job_ids:
        assert client.job(job_id=job_id, job_kind="archive").wait_for_idle(timeout=WAIT).success
    both = [m.name for m in read_tar(bucket.object("a.tar").get_reader().read_all())]
    assert both == ["obj-00", "obj-01", "obj-02"] + sorted(contents)
    # a prefix that also selects the shard being appended to leaves the shard out of itself
    for _ in range(2):
        for job_id in bucket.objects(obj_template="obj-").archive("obj-all.tar", allow_append=True):
            assert client.job(job_id=job_id, job_kind="archive").wait_for_idle(timeout=WAIT).success
    twice = [m.name for m in read_tar(bucket.object("obj-all.tar").get_reader().read_all())]
    assert twice == sorted(contents) * 2


def test_archive_without_coer_writes_nothing_when_a_name_is_missing(client, bucket):
    objects(bucket, n=2)
    job_ids = bucket.objects(obj_names=["obj-00", "gone"]).archive("x.tar")
    results = [client.job(job_id=i, job_kind="archive").wait_for_idle(timeout=WAIT) for i in job_ids]
    assert not all(r.success for r in results)
    assert "gone" in " ".join(r.error or "" for r in results)
    assert "x.tar" not in names_in(bucket)
    job_ids = bucket.objects(obj_names=["obj-00", "gone"]).archive("y.tar", continue_on_err=True)
    for job_id in job_ids:
        client.job(job_id=job_id, job_kind="archive").wait_for_idle(timeout=WAIT)
    assert [m.name for m in read_tar(bucket.object("y.tar").get_reader().read_all())] == ["obj-00"]


def test_object_group_validation(client, bucket, endpoint):
    objects(bucket, n=1)
    for template in ["obj-{1..1000000000}", "obj-{9..0}", "obj-{0..9..0}"]:
        resp = action(endpoint, "DELETE", bucket.name, "delete-listrange", {"template": template})
        assert_error_body(resp, 400)
    resp = action(endpoint, "PUT", bucket.name, "archive", {"objnames": ["obj-00"], "archname": "a.rar"})
    assert "must end in" in assert_error_body(resp, 400)["message"]
    resp = action(endpoint, "PUT", bucket.name, "archive", {"objnames": ["obj-00"], "archname": "../a.tar"})
    assert_error_body(resp, 400)
    resp = action(endpoint, "PUT", bucket.name, "archive",
                  {"objnames": ["obj-00"], "archname": "a.tar", "mime": "zip"})
    assert "mime mismatch" in assert_error_body(resp, 400)["message"]
    resp = action(endpoint, "PUT", bucket.name, "archive",
                  {"objnames": ["obj-00"], "archname": "a.tar",
                   "tobck": {"name": "no-such-bucket", "provider": "ais", "namespace": None}})
    assert 'bucket "ais://no-such-bucket" does not exist' in assert_error_body(resp, 404)["message"]
    resp = action(endpoint, "DELETE", "no-such-bucket", "delete-listrange", {"objnames": ["a"]})
    assert_error_body(resp, 404)
    # evict and prefetch are for remote buckets only (the SDK refuses them before sending)
    resp = action(endpoint, "DELETE", bucket.name, "evict-listrange", {"objnames": ["obj-00"]})
    message = assert_error_body(resp, 400)["message"]
    assert message == f"evict-listrange: expecting remote bucket (have ais://{bucket.name})"
    resp = action(endpoint, "POST", bucket.name, "prefetch-listrange", {"objnames": ["obj-00"]})
    message = assert_error_body(resp, 400)["message"]
    assert message == f"prefetch-listrange: expecting remote bucket (have ais://{bucket.name})"


# --------------------------------------------------------------------------------------------
# bucket-level


def test_bucket_copy_with_prefix_prepend_and_ext(client, make_bucket):
    src, dst = make_bucket("src"), make_bucket("dst")
    put_objects(src, {"prefix--obj.old-ext": b"a" * 100, "prefix-2.old-ext": b"b" * 10, "other": b"c"})
    job_id = src.copy(dst, prefix_filter="prefix-", prepend="new-", ext={"old-ext": "new-ext"}, num_workers=10)
    assert client.job(job_id=job_id).wait_for_idle(timeout=WAIT).success
    assert names_in(dst) == ["new-prefix--obj.new-ext", "new-prefix-2.new-ext"]
    assert dst.object("new-prefix--obj.new-ext").get_reader().read_all() == b"a" * 100
    status = client.job(job_id=job_id).status()
    assert status.end_time != 0 and not status.err


def test_bucket_copy_dry_run_writes_nothing(client, bucket):
    objects(bucket, n=4)
    dst = client.bucket(f"{bucket.name}-dry")
    job_id = bucket.copy(dst, dry_run=True, num_workers=2)
    assert client.job(job_id=job_id).wait_for_idle(timeout=WAIT).success
    snaps = client.job(job_id=job_id).get_details().list_snapshots()
    assert sum(s.stats.objects for s in snaps) == 4
    assert_no_bucket(dst)


def test_bucket_copy_validation(bucket, endpoint):
    resp = action(endpoint, "POST", bucket.name, "copy-bck", {})
    assert 'missing "bck_to"' in assert_error_body(resp, 400)["message"]
    resp = action(endpoint, "POST", bucket.name, "copy-bck", {}, f"&bck_to=ais%2F%40%23%2F{bucket.name}%2F")
    assert "onto itself" in assert_error_body(resp, 400)["message"]
    resp = action(endpoint, "POST", "no-such-bucket", "copy-bck", {}, "&bck_to=ais%2F%40%23%2Fx%2F")
    assert_error_body(resp, 404)


def test_bucket_rename_keeps_every_object(client, make_bucket):
    old = make_bucket("old")
    contents = objects(old, n=30, size=3000)
    new_name = f"{old.name}-renamed"
    job_id = old.rename(new_name)  # the SDK renames its handle too
    assert job_id
    try:
        result = client.job(job_id=job_id).wait(timeout=WAIT)
        assert result.success, result
        renamed = client.bucket(new_name)
        renamed.head()
        assert names_in(renamed) == sorted(contents)
        for name, data in contents.items():
            assert renamed.object(name).get_reader().read_all() == data
        batch = client.batch(bucket=renamed)
        for name in sorted(contents):
            batch.add(name)
        assert [(o.obj_name, d) for o, d in batch.get()] == sorted(contents.items())
        assert_no_bucket(client.bucket(new_name.removesuffix("-renamed")))
    finally:
        client.bucket(new_name).delete(missing_ok=True)


def test_bucket_rename_conflicts(client, make_bucket, endpoint):
    a, b = make_bucket("a"), make_bucket("b")
    resp = action(endpoint, "POST", a.name, "move-bck", None, f"&bck_to=ais%2F%40%23%2F{b.name}%2F")
    assert "already exists" in assert_error_body(resp, 409)["message"]
    resp = action(endpoint, "POST", a.name, "move-bck", None, f"&bck_to=ais%2F%40%23%2F{a.name}%2F")
    assert_error_body(resp, 400)


def test_bucket_summary(client, bucket):
    empty = bucket.summary()
    assert empty["ObjCount"]["obj_count_present"] == "0"
    assert empty["TotalSize"]["size_all_present_objs"] == "0"
    assert empty["ObjCount"]["obj_count_remote"] == "0"
    assert empty["used_pct"] == 0
    put_objects(bucket, {"prefix1-a": b"x" * 12, "prefix1-b": b"y" * 12, "prefix2-a": b"z" * 12, "p3": b"w" * 12})
    full = bucket.summary()
    assert full["ObjCount"]["obj_count_present"] == "4"
    assert full["TotalSize"]["size_all_present_objs"] == "48"
    assert full["ObjSize"] == {"obj_min_size": 12, "obj_avg_size": 12, "obj_max_size": 12}
    assert bucket.summary(prefix="prefix1")["ObjCount"]["obj_count_present"] == "2"
    assert bucket.summary(prefix="prefix2")["ObjCount"]["obj_count_present"] == "1"
    bucket.delete()
    with pytest.raises(ErrBckNotFound):
        bucket.summary()


def test_bucket_info(client, bucket):
    props, summary = bucket.info(flt_presence=FLTPresence.FLT_EXISTS)
    assert json.loads(props)["provider"] == "ais"
    assert summary["name"] == bucket.name and summary["provider"] == "ais"
    assert summary["ObjCount"]["obj_count_present"] == "0"
    put_objects(bucket, {"prefix1-a": b"1" * 12, "prefix1-b": b"2" * 12, "prefix2-a": b"3" * 12})
    _, summary = bucket.info()
    assert (summary["ObjCount"]["obj_count_present"], summary["TotalSize"]["size_all_present_objs"]) == ("3", "36")
    _, summary = bucket.info(prefix="prefix1")
    assert (summary["ObjCount"]["obj_count_present"], summary["TotalSize"]["size_all_present_objs"]) == ("2", "24")
