"""GetBatch (`/v1/ml/moss`) through the aistore SDK: content, order, names, metadata, errors and
formats, in streaming mode (the default) and multipart mode (streaming_get=False)."""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess

import pytest
from aistore.sdk.batch.types import MossOut
from aistore.sdk.enums import Colocation
from aistore.sdk.errors import AISError, ErrBckNotFound

from helpers import (
    PLACEHOLDER_DIR,
    entry_name,
    moss_url,
    parse_buffered,
    placeholder_name,
    put_objects,
    rand_bytes,
    read_archive,
    read_tar,
    split_multipart,
)

MODES = pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "multipart"])

N_OBJECTS = 200


@pytest.fixture(scope="module")
def dataset(module_buckets):
    """200 objects of 1 B to 6 KiB spread over the targets (HRW), with known content."""
    bucket = module_buckets("batch")
    contents = {
        f"obj-{i:03d}.bin": rand_bytes(("batch", i), 1 + (i * 37) % 6000) for i in range(N_OBJECTS)
    }
    put_objects(bucket, contents)
    return bucket, contents


def shuffled(names, seed="order"):
    order = list(names)
    random.Random(seed).shuffle(order)
    return order


def collect(batch, **kwargs):
    """Every (MossOut, content) the SDK yields, as a list."""
    results = []
    for moss_out, content in batch.get(**kwargs):
        assert isinstance(moss_out, MossOut)
        results.append((moss_out, content))
    return results


def raw_members(batch, streaming: bool, fmt: str = ".tar"):
    """Archive members (and MossResp JSON in multipart mode) of `batch.get(raw=True)`."""
    raw = batch.get(raw=True)
    try:
        if streaming:
            if fmt == ".zip":
                return None, read_archive(raw.read(), fmt)
            return None, read_tar(raw) if fmt == ".tar" else read_archive(raw.read(), fmt)
        return parse_buffered(raw.read(), raw.headers["Content-Type"], fmt)
    finally:
        raw.close()


# ------------------------------------------------------------------------------------------
# content, order, names


@MODES
def test_batch_returns_objects_in_request_order(client, dataset, streaming):
    """Every requested object comes back once, in request order, with its exact bytes."""
    bucket, contents = dataset
    order = shuffled(contents)
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    for name in order:
        batch.add(name)
    results = collect(batch)
    assert len(results) == len(order) == N_OBJECTS
    for name, (out, content) in zip(order, results):
        assert out.obj_name == name
        assert out.bucket == bucket.name
        assert content == contents[name], name
        assert out.err_msg is None
        if not streaming:
            assert out.size == len(contents[name])
            assert out.provider == "ais"


@MODES
def test_batch_member_names(client, dataset, streaming):
    """Archive members are regular files named `<bucket>/<object>`, in request order."""
    bucket, contents = dataset
    order = shuffled(contents, seed="names")[:50]
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    for name in order:
        batch.add(name)
    meta, members = raw_members(batch, streaming)
    assert [m.name for m in members] == [entry_name(bucket.name, n) for n in order]
    for member, name in zip(members, order):
        assert member.is_file
        assert member.data == contents[name]
    if meta is not None:
        assert [o["objname"] for o in meta["out"]] == order
        assert all("err_msg" not in o or o["err_msg"] is None for o in meta["out"])


def test_multipart_decode_as_stream(client, dataset):
    """The SDK's streaming multipart decoder gets the same entries as the buffered one."""
    bucket, contents = dataset
    order = shuffled(contents, seed="stream-decode")[:80]
    batch = client.batch(bucket=bucket, streaming_get=False)
    for name in order:
        batch.add(name)
    results = collect(batch, decode_as_stream=True)
    assert [out.obj_name for out, _ in results] == order
    assert [content for _, content in results] == [contents[n] for n in order]
    assert [out.size for out, _ in results] == [len(contents[n]) for n in order]


def test_batch_from_name_list(client, dataset):
    """client.batch(list_of_names, bucket=...) fetches exactly those names in that order."""
    bucket, contents = dataset
    order = shuffled(contents, seed="names-list")[:30]
    results = collect(client.batch(order, bucket=bucket))
    assert [(out.obj_name, content) for out, content in results] == [(n, contents[n]) for n in order]


def test_batch_only_obj_name(client, dataset):
    """With only_obj_name the members are named by object name alone."""
    bucket, contents = dataset
    order = sorted(contents)[:10]
    batch = client.batch(bucket=bucket, only_obj_name=True)
    for name in order:
        batch.add(name)
    _, members = raw_members(batch, streaming=True)
    assert [m.name for m in members] == order
    assert [m.data for m in members] == [contents[n] for n in order]


def test_batch_colocation_hint(client, dataset):
    """The target-aware colocation hint (?coloc=1) changes nothing in the result."""
    bucket, contents = dataset
    order = shuffled(contents, seed="coloc")[:40]
    batch = client.batch(bucket=bucket, colocation=Colocation.TARGET_AWARE)
    for name in order:
        batch.add(name)
    results = collect(batch)
    assert [(o.obj_name, c) for o, c in results] == [(n, contents[n]) for n in order]


def test_batch_object_reused_after_get(client, dataset):
    """A Batch is cleared by get() and can be filled and sent again."""
    bucket, contents = dataset
    batch = client.batch(bucket=bucket)
    batch.add("obj-001.bin")
    first = collect(batch)
    batch.add("obj-002.bin").add("obj-003.bin")
    second = collect(batch)
    assert [c for _, c in first] == [contents["obj-001.bin"]]
    assert [c for _, c in second] == [contents["obj-002.bin"], contents["obj-003.bin"]]


# ------------------------------------------------------------------------------------------
# several buckets


@pytest.fixture
def two_buckets(make_bucket):
    """Two buckets holding the same object names with different content."""
    first, second = make_bucket("one"), make_bucket("two")
    names = [f"shared/{i:02d}.txt" for i in range(12)]
    data = {}
    for bck in (first, second):
        objs = {n: rand_bytes((bck.name, n), 50 + i) for i, n in enumerate(names)}
        put_objects(bck, objs)
        data.update({(bck.name, n): d for n, d in objs.items()})
    return first, second, names, data


@MODES
def test_batch_without_default_bucket_across_two_buckets(client, two_buckets, streaming):
    """Entries from two buckets in one batch keep their bucket: same names, different bytes."""
    first, second, names, data = two_buckets
    batch = client.batch(streaming_get=streaming)
    expected = []
    for i, name in enumerate(names):
        bck = first if i % 3 else second
        batch.add(bck.object(name))
        expected.append((bck.name, name))
    results = collect(batch)
    assert len(results) == len(expected)
    for (bck_name, name), (out, content) in zip(expected, results):
        assert (out.bucket, out.obj_name) == (bck_name, name)
        assert content == data[(bck_name, name)]


@MODES
def test_batch_entry_bucket_overrides_default(client, two_buckets, streaming):
    """With a default bucket, add(name, bck=..., provider='ais') reads from the other bucket."""
    first, second, names, data = two_buckets
    batch = client.batch(bucket=first, streaming_get=streaming)
    batch.add(names[0])
    batch.add(names[0], bck=second.name, provider="ais")
    batch.add(second.object(names[1]))
    batch.add(names[1])
    results = collect(batch)
    expected = [(first.name, names[0]), (second.name, names[0]), (second.name, names[1]), (first.name, names[1])]
    assert [(o.bucket, o.obj_name) for o, _ in results] == expected
    assert [c for _, c in results] == [data[k] for k in expected]


def test_batch_two_buckets_member_names(client, two_buckets):
    """Members of a cross-bucket batch are prefixed by their own bucket name."""
    first, second, names, _ = two_buckets
    batch = client.batch()
    batch.add(first.object(names[0])).add(second.object(names[0])).add(first.object(names[1]))
    _, members = raw_members(batch, streaming=True)
    assert [m.name for m in members] == [
        f"{first.name}/{names[0]}",
        f"{second.name}/{names[0]}",
        f"{first.name}/{names[1]}",
    ]


@MODES
def test_plugin_style_batch_of_objects(client, two_buckets, streaming):
    """The PyTorch-plugin form client.batch(objects=[Object, ...]) works across buckets."""
    first, second, names, data = two_buckets
    objects = [first.object(n) for n in names[:5]] + [second.object(n) for n in reversed(names)]
    results = collect(client.batch(objects=objects, streaming_get=streaming, cont_on_err=False))
    assert len(results) == len(objects)
    for obj, (out, content) in zip(objects, results):
        assert (out.bucket, out.obj_name) == (obj.bucket_name, obj.name)
        assert content == data[(obj.bucket_name, obj.name)]


# ------------------------------------------------------------------------------------------
# opaque, ranges, duplicates

OPAQUES = [
    b"id-1",
    b"\xfb\xff\xbf",  # base64 '+/+/'
    b"\xff\xfe\xfd\xfc",  # base64 '//79/A=='
    b"\x00\x01\x02",
    b"sample:000042|label=cat",
    bytes(range(256)),
]


def test_opaque_echoed_in_multipart_metadata(client, dataset):
    """MossOut.opaque is exactly the bytes given to add(opaque=...), including '+' and '/' in base64."""
    bucket, contents = dataset
    names = sorted(contents)[: len(OPAQUES) + 1]
    batch = client.batch(bucket=bucket, streaming_get=False)
    for name, opaque in zip(names, OPAQUES):
        batch.add(name, opaque=opaque)
    batch.add(names[-1])  # no opaque
    results = collect(batch)
    assert len(results) == len(names)
    assert [out.opaque for out, _ in results[:-1]] == OPAQUES
    assert results[-1][0].opaque is None
    assert all(content == contents[out.obj_name] for out, content in results)


def test_opaque_wire_form_is_base64(client, dataset):
    """In the raw metadata, `opaque` is base64 that decodes to the given bytes."""
    bucket, contents = dataset
    names = sorted(contents)[:3]
    batch = client.batch(bucket=bucket, streaming_get=False)
    for name, opaque in zip(names, OPAQUES[1:4]):
        batch.add(name, opaque=opaque)
    meta, members = raw_members(batch, streaming=False)
    assert len(meta["out"]) == len(members) == 3
    decoded = [base64.b64decode(o["opaque"].replace("-", "+").replace("_", "/")) for o in meta["out"]]
    assert decoded == OPAQUES[1:4]


RANGE_SIZE = 1000
RANGES = [(0, 10), (100, 250), (990, 10), (500, -1), (999, 1), (0, RANGE_SIZE), (0, -1), (7, -1)]


@MODES
def test_batch_byte_ranges(client, bucket, streaming):
    """start/length return exactly that slice (length=-1: to the end); MossOut.size is its length."""
    data = rand_bytes("batch-ranges", RANGE_SIZE)
    bucket.object("ranged.bin").get_writer().put_content(data)
    bucket.object("other.bin").get_writer().put_content(b"other")
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    expected = []
    for start, length in RANGES:
        batch.add("ranged.bin", start=start, length=length)
        expected.append(data[start:] if length == -1 else data[start : start + length])
        batch.add("other.bin")
        expected.append(b"other")
    results = collect(batch)
    assert [c for _, c in results] == expected
    assert all(out.err_msg is None for out, _ in results)
    if not streaming:
        assert [out.size for out, _ in results] == [len(e) for e in expected]


@MODES
def test_batch_range_member_names(client, bucket, streaming):
    """A ranged entry is named like a whole-object entry, and its member holds just the slice."""
    data = rand_bytes("range-names", 300)
    bucket.object("r.bin").get_writer().put_content(data)
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    batch.add("r.bin", start=10, length=20).add("r.bin", start=250, length=-1)
    meta, members = raw_members(batch, streaming)
    assert [m.name for m in members] == [f"{bucket.name}/r.bin"] * 2
    assert [m.data for m in members] == [data[10:30], data[250:]]
    if meta is not None:
        assert [o["size"] for o in meta["out"]] == [20, 50]


@MODES
def test_same_object_twice_full_and_ranged(client, bucket, streaming):
    """One object requested whole, ranged, and whole again yields three entries in that order."""
    data = rand_bytes("twice", 777)
    bucket.object("twice.bin").get_writer().put_content(data)
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    batch.add("twice.bin").add("twice.bin", start=5, length=10).add("twice.bin")
    results = collect(batch)
    assert [c for _, c in results] == [data, data[5:15], data]
    assert [o.obj_name for o, _ in results] == ["twice.bin"] * 3
    if not streaming:
        assert [o.size for o, _ in results] == [777, 10, 777]


# ------------------------------------------------------------------------------------------
# missing objects and errors


def test_missing_objects_multipart_placeholders(client, dataset):
    """With cont_on_err, missing objects are empty entries with err_msg 'does not exist'; others intact."""
    bucket, contents = dataset
    present = sorted(contents)[:4]
    order = [present[0], "missing-1", present[1], present[2], "missing-2", present[3]]
    batch = client.batch(bucket=bucket, streaming_get=False, cont_on_err=True)
    for name in order:
        batch.add(name)
    results = collect(batch)
    assert [o.obj_name for o, _ in results] == order
    for name, (out, content) in zip(order, results):
        if name.startswith("missing"):
            assert out.err_msg and "does not exist" in out.err_msg, out
            assert out.size == 0
            assert content == b""
        else:
            assert out.err_msg is None
            assert out.size == len(contents[name])
            assert content == contents[name]


def test_missing_objects_streaming_placeholders(client, dataset):
    """In streaming mode a missing object is an empty entry the SDK recognizes as failed."""
    bucket, contents = dataset
    present = sorted(contents)[4:7]
    order = ["missing-first", present[0], present[1], "missing-mid", present[2]]
    batch = client.batch(bucket=bucket, cont_on_err=True)
    for name in order:
        batch.add(name)
    results = collect(batch)
    assert len(results) == len(order)
    for name, (out, content) in zip(order, results):
        assert out.obj_name == name
        if name.startswith("missing"):
            assert content == b""
            assert out.err_msg is not None  # the SDK matched the __404__/ placeholder name
        else:
            assert content == contents[name]
            assert out.err_msg is None


@MODES
def test_missing_object_placeholder_names(client, dataset, streaming):
    """A missing entry is the member `__404__/<bucket>/<object>`, zero bytes, in its slot."""
    bucket, contents = dataset
    present = sorted(contents)[7]
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=True)
    batch.add(present).add("gone/x.bin").add(present)
    meta, members = raw_members(batch, streaming)
    assert [m.name for m in members] == [
        entry_name(bucket.name, present),
        placeholder_name(bucket.name, "gone/x.bin"),
        entry_name(bucket.name, present),
    ]
    assert [m.data for m in members] == [contents[present], b"", contents[present]]
    assert all(m.is_file for m in members)
    if meta is not None:
        assert "does not exist" in meta["out"][1]["err_msg"]
        assert meta["out"][1]["size"] == 0
        assert "err_msg" not in meta["out"][0]  # omitted on success, not "" or null


def test_missing_only_obj_name_placeholder(client, dataset):
    """With only_obj_name a missing entry is `__404__/<object>`."""
    bucket, _ = dataset
    batch = client.batch(bucket=bucket, only_obj_name=True, cont_on_err=True)
    batch.add("obj-000.bin").add("nope.bin")
    _, members = raw_members(batch, streaming=True)
    assert [m.name for m in members] == ["obj-000.bin", f"{PLACEHOLDER_DIR}/nope.bin"]


@MODES
def test_strict_mode_missing_object_fails_whole_batch(client, dataset, streaming):
    """cont_on_err=False with a missing object raises a 404 AISError and yields no entries."""
    bucket, contents = dataset
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=False)
    batch.add(sorted(contents)[0]).add("definitely-missing.bin").add(sorted(contents)[1])
    received = []
    with pytest.raises(AISError) as err:
        for entry in batch.get():
            received.append(entry)
    assert received == []
    assert err.value.status_code == 404
    assert "does not exist" in str(err.value)
    assert "definitely-missing.bin" in err.value.message


@MODES
def test_batch_on_missing_bucket(client, streaming):
    """A batch against a bucket that does not exist raises ErrBckNotFound (404, 'does not exist')."""
    batch = client.batch(bucket=client.bucket("non-existent-bucket-12345"), streaming_get=streaming)
    batch.add("obj")
    with pytest.raises(ErrBckNotFound) as err:
        list(batch.get())
    assert "404" in str(err.value)
    assert "does not exist" in str(err.value)


def test_batch_entry_in_missing_bucket(client, dataset):
    """One entry in a missing bucket (no default bucket) fails the request with ErrBckNotFound."""
    bucket, contents = dataset
    batch = client.batch(cont_on_err=True)
    batch.add(bucket.object(sorted(contents)[0]))
    batch.add(client.bucket("no-such-bucket-xyz").object("a"))
    with pytest.raises(ErrBckNotFound) as err:
        list(batch.get())
    assert "no-such-bucket-xyz" in err.value.message


@MODES
def test_zero_byte_objects_are_real_entries(client, bucket, streaming):
    """Existing empty objects come back under their own name with size 0, not as placeholders."""
    contents = {f"z-{i:02d}": (b"" if i % 2 == 0 else rand_bytes(("z", i), 4096)) for i in range(10)}
    put_objects(bucket, contents)
    order = sorted(contents)
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=True)
    for name in order:
        batch.add(name)
    results = collect(batch)
    assert [c for _, c in results] == [contents[n] for n in order]
    assert all(out.err_msg is None for out, _ in results)
    if not streaming:
        assert [o.size for o, _ in results] == [len(contents[n]) for n in order]
    for name in order:
        batch.add(name)
    _, members = raw_members(batch, streaming)
    assert [m.name for m in members] == [entry_name(bucket.name, n) for n in order]


# ------------------------------------------------------------------------------------------
# raw mode and output formats


def test_raw_mode_is_a_tar_stream(client, dataset):
    """get(raw=True) returns a stream Python's tarfile reads as `<bucket>/<obj>` members."""
    bucket, contents = dataset
    order = shuffled(contents, seed="raw")[:25]
    batch = client.batch(bucket=bucket)
    for name in order:
        batch.add(name)
    raw = batch.get(raw=True)
    try:
        members = read_tar(raw, mode="r|")
    finally:
        raw.close()
    assert [(m.name, m.data) for m in members] == [(f"{bucket.name}/{n}", contents[n]) for n in order]
    assert all(m.mode == 0o644 for m in members)


FORMATS = [
    (".tar", "application/x-tar"),
    (".tgz", "application/gzip"),
    (".tar.gz", "application/gzip"),
    (".zip", "application/zip"),
]


@pytest.mark.parametrize("fmt", [f for f, _ in FORMATS])
@MODES
def test_output_formats_roundtrip(client, dataset, fmt, streaming):
    """Every SDK output format carries the same entries, in order, through the SDK's extractors."""
    bucket, contents = dataset
    order = shuffled(contents, seed=fmt)[:30] + ["missing-in-" + fmt]
    batch = client.batch(bucket=bucket, output_format=fmt, streaming_get=streaming)
    for name in order:
        batch.add(name)
    results = collect(batch)
    assert [o.obj_name for o, _ in results] == order
    assert [c for _, c in results] == [contents.get(n, b"") for n in order]
    assert results[-1][0].err_msg is not None
    assert all(o.err_msg is None for o, _ in results[:-1])


@pytest.mark.parametrize("fmt, content_type", FORMATS, ids=[f for f, _ in FORMATS])
def test_streaming_format_content_type_and_names(client, dataset, fmt, content_type):
    """A streamed archive has the format's Content-Type, magic bytes and `<bucket>/<obj>` names."""
    bucket, contents = dataset
    order = shuffled(contents, seed="ct" + fmt)[:10]
    batch = client.batch(bucket=bucket, output_format=fmt)
    for name in order:
        batch.add(name)
    raw = batch.get(raw=True)
    try:
        assert raw.headers["Content-Type"] == content_type
        assert "Content-Encoding" not in raw.headers
        body = raw.read()
    finally:
        raw.close()
    magic = {".zip": b"PK\x03\x04", ".tgz": b"\x1f\x8b", ".tar.gz": b"\x1f\x8b"}.get(fmt)
    if magic:
        assert body.startswith(magic)
    members = [m for m in read_archive(body, fmt) if m.is_file]
    assert [(m.name, m.data) for m in members] == [(f"{bucket.name}/{n}", contents[n]) for n in order]


@MODES
def test_lz4_output_over_http(endpoint, dataset, http, streaming):
    """mime .tar.lz4 (not constructible via the SDK) returns an LZ4 frame the lz4 CLI decodes to the TAR."""
    lz4 = shutil.which("lz4")
    assert lz4, "lz4 CLI required (scripts/test.sh installs it)"
    bucket, contents = dataset
    order = sorted(contents)[:12]
    body = {"in": [{"objname": n} for n in order], "mime": ".tar.lz4", "strm": streaming}
    resp = http.get(moss_url(endpoint, bucket.name), params={"provider": "ais"}, json=body)
    assert resp.status_code == 200, resp.text[:500]
    if streaming:
        assert resp.headers["Content-Type"] == "application/x-lz4"
        archive = resp.content
        meta = None
    else:
        (_, meta_raw), (_, archive) = split_multipart(resp.content, resp.headers["Content-Type"])
        meta = json.loads(meta_raw)
    assert archive.startswith(b"\x04\x22\x4d\x18")  # LZ4 frame magic
    tar_bytes = subprocess.run([lz4, "-d", "-c"], input=archive, capture_output=True, check=True).stdout
    members = read_tar(tar_bytes)
    assert [(m.name, m.data) for m in members] == [(f"{bucket.name}/{n}", contents[n]) for n in order]
    if meta is not None:
        assert [o["size"] for o in meta["out"]] == [len(contents[n]) for n in order]


# ------------------------------------------------------------------------------------------
# a large batch


def test_5000_small_objects_keep_order(client, bucket):
    """5000 small objects requested in a shuffled order come back complete and in that order."""
    contents = {f"small/{i:05d}": rand_bytes(("small", i), 8 + i % 56) for i in range(5000)}
    put_objects(bucket, contents, workers=12)
    order = shuffled(contents, seed="5000")
    batch = client.batch(bucket=bucket)
    for name in order:
        batch.add(name)
    results = collect(batch)
    assert len(results) == 5000
    for (out, content), name in zip(results, order):
        assert out.obj_name == name
        assert content == contents[name], name
