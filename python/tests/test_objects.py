"""Buckets, objects, listing and cluster calls through the aistore SDK, as a user makes them."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import xxhash
from aistore.sdk.errors import AISError, ErrBckAlreadyExists, ErrBckNotFound, ErrObjNotFound

from conftest import unique_bucket_name
from helpers import assert_error_body, put_objects, rand_bytes, raw_request

# ------------------------------------------------------------------------------------------
# buckets


def test_create_existing_bucket_is_conflict(client, bucket):
    """Creating a bucket that exists (exist_ok=False) fails with 409 ErrBckAlreadyExists."""
    with pytest.raises(ErrBckAlreadyExists) as err:
        client.bucket(bucket.name).create(exist_ok=False)
    assert err.value.status_code == 409
    assert f"ais://{bucket.name}" in err.value.message
    assert "already exists" in err.value.message


def test_create_exist_ok_is_idempotent(client):
    """create(exist_ok=True) twice creates the bucket once and never fails."""
    name = unique_bucket_name("idem")
    try:
        first = client.bucket(name).create(exist_ok=True)
        second = client.bucket(name).create(exist_ok=True)
        assert first.name == second.name == name
        listed = [b.name for b in client.cluster().list_buckets()]
        assert listed.count(name) == 1
    finally:
        client.bucket(name).delete(missing_ok=True)


def test_head_and_list_bucket(client, bucket):
    """A new bucket answers HEAD and appears in the bucket list as an ais bucket."""
    headers = bucket.head()
    assert headers is not None
    matches = [b for b in client.cluster().list_buckets() if b.name == bucket.name]
    assert len(matches) == 1
    assert matches[0].provider == "ais"


def test_destroyed_bucket_is_gone(client):
    """After destroy the bucket, its objects and its listing are gone (404 everywhere)."""
    name = unique_bucket_name("gone")
    bucket = client.bucket(name).create()
    bucket.object("x").get_writer().put_content(b"data")
    bucket.delete()

    with pytest.raises(AISError) as head_err:
        bucket.head()
    assert head_err.value.status_code == 404
    with pytest.raises(ErrBckNotFound) as list_err:
        bucket.list_all_objects()
    assert "does not exist" in list_err.value.message
    with pytest.raises(ErrBckNotFound):
        bucket.object("x").get_reader().read_all()
    with pytest.raises(ErrBckNotFound):
        bucket.delete(missing_ok=False)
    bucket.delete(missing_ok=True)
    assert name not in [b.name for b in client.cluster().list_buckets()]


def test_bare_delete_does_not_destroy_a_bucket(client, endpoint, http):
    """DELETE /v1/buckets/B without {"action":"destroy-bck"} is 400; the bucket and its objects stay."""
    name = unique_bucket_name("bare")
    bucket = client.bucket(name).create()
    try:
        bucket.object("x").get_writer().put_content(b"kept")
        resp = http.delete(f"{endpoint}/v1/buckets/{name}", params={"provider": "ais"})
        err = assert_error_body(resp, 400)
        assert "destroy-bck" in err["message"], err
        assert bucket.object("x").get_reader().read_all() == b"kept"
    finally:
        bucket.delete(missing_ok=True)
    with pytest.raises(AISError) as err:
        bucket.head()
    assert err.value.status_code == 404


def test_recreated_bucket_is_empty(client):
    """A bucket destroyed and created again under the same name starts empty."""
    name = unique_bucket_name("again")
    bucket = client.bucket(name).create()
    try:
        bucket.object("old").get_writer().put_content(b"old")
        bucket.delete()
        bucket.create()
        assert bucket.list_all_objects() == []
        with pytest.raises(ErrObjNotFound):
            bucket.object("old").get_reader().read_all()
    finally:
        bucket.delete(missing_ok=True)


# ------------------------------------------------------------------------------------------
# objects

ODD_NAMES = [
    "dir/a b/ünï.txt",
    "a/b/c/d/e/f/deep.bin",
    "spaces in name.txt",
    "日本語/ファイル名.txt",
    "emoji-😀.dat",
    "punct+plus&amp=eq,comma;semi@at!bang'q(1).txt",
    "percent%20literal%2Fnot-a-slash",
    "question?mark#hash",
    "trailing.dot.",
    "-leading-dash",
]


def test_put_get_odd_names(bucket):
    """Names with '/', spaces, UTF-8, '%', '?', '#' round-trip exactly and list under the same name."""
    contents = {name: rand_bytes(name, 100 + i) for i, name in enumerate(ODD_NAMES)}
    put_objects(bucket, contents)
    for name, data in contents.items():
        assert bucket.object(name).get_reader().read_all() == data, name
    listed = sorted(entry.name for entry in bucket.list_all_objects())
    assert listed == sorted(contents)


def test_put_file_5mib_roundtrip(bucket, tmp_path):
    """A 5 MiB file uploaded with put_file reads back byte for byte, with the right size."""
    data = rand_bytes("five-mib", 5 * 1024 * 1024 + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    obj = bucket.object("big/5mib.bin")
    obj.get_writer().put_file(path)
    assert obj.get_reader().read_all() == data
    assert obj.head().size == len(data)


def test_streamed_read_matches(bucket):
    """Iterating a reader in chunks yields the whole object."""
    data = rand_bytes("chunks", 3 * 1024 * 1024 + 7)
    obj = bucket.object("chunked.bin")
    obj.get_writer().put_content(data)
    received = b"".join(obj.get_reader(chunk_size=64 * 1024))
    assert received == data


def test_overwrite_replaces_content(bucket):
    """A second PUT replaces content and size; no trace of the old content remains."""
    obj = bucket.object("over/write.txt")
    obj.get_writer().put_content(b"first version, rather long content")
    obj.get_writer().put_content(b"second")
    assert obj.get_reader().read_all() == b"second"
    assert obj.head().size == len(b"second")
    [entry] = bucket.list_all_objects(props="name,size")
    assert (entry.name, entry.size) == ("over/write.txt", 6)


def test_parallel_read(bucket):
    """get_reader(num_workers=4) (HEAD for the size, then concurrent ranged GETs) assembles the object."""
    data = rand_bytes("parallel", 6 * 1024 * 1024 + 5)
    obj = bucket.object("parallel.bin")
    obj.get_writer().put_content(data)
    with obj.get_reader(num_workers=4).read_all() as buffer:
        assert buffer.tobytes() == data


def test_read_as_file(bucket):
    """get_reader().as_file() reads like a local file, in pieces."""
    data = rand_bytes("as-file", 1024 * 1024 + 11)
    obj = bucket.object("as/file.bin")
    obj.get_writer().put_content(data)
    with obj.get_reader().as_file() as fileobj:
        head = fileobj.read(1000)
        rest = fileobj.read()
    assert head + rest == data


def test_direct_read_from_target(bucket):
    """get_reader(direct=True) goes straight to the target the SDK picks and returns the object."""
    data = rand_bytes("direct", 70_000)
    for i in range(6):  # several names, so several owners
        bucket.object(f"direct-{i}").get_writer().put_content(data[i:])
    for i in range(6):
        assert bucket.object(f"direct-{i}").get_reader(direct=True).read_all() == data[i:]


def test_object_from_url(client, bucket):
    """client.get_object_from_url('ais://bucket/name') addresses the same object."""
    bucket.object("by/url.txt").get_writer().put_content(b"via url")
    obj = client.get_object_from_url(f"ais://{bucket.name}/by/url.txt")
    assert obj.get_reader().read_all() == b"via url"


def test_object_props(bucket):
    """obj.props reports size, checksum and presence."""
    data = rand_bytes("props", 999)
    obj = bucket.object("props.bin")
    obj.get_writer().put_content(data)
    props = obj.props
    assert props.size == 999
    assert props.checksum_type == "xxhash2"
    assert props.checksum_value == xxhash.xxh64(data).hexdigest()
    assert props.present is True


def test_copy_never_truncates_source(bucket):
    """obj.copy(dst) either copies or fails with a 4xx; the source object is never altered."""
    data = rand_bytes("copy-src", 12_345)
    src, dst = bucket.object("copy/src.bin"), bucket.object("copy/dst.bin")
    src.get_writer().put_content(data)
    try:
        src.copy(dst)
    except AISError as err:
        assert 400 <= err.status_code < 500, err
    else:
        assert dst.get_reader().read_all() == data
    assert src.get_reader().read_all() == data
    assert src.head().size == len(data)


RANGE_DATA = rand_bytes("ranges", 1000)


@pytest.mark.parametrize(
    "byte_range, expected",
    [
        ("bytes=2-4", RANGE_DATA[2:5]),
        ("bytes=0-0", RANGE_DATA[0:1]),
        ("bytes=0-999", RANGE_DATA),
        ("bytes=990-", RANGE_DATA[990:]),
        ("bytes=999-", RANGE_DATA[999:]),
        ("bytes=-7", RANGE_DATA[-7:]),
        ("bytes=500-2000", RANGE_DATA[500:]),  # end past EOF is clamped (RFC 9110)
    ],
)
def test_byte_range_reads(bucket, byte_range, expected):
    """A ranged GET returns exactly the requested slice."""
    obj = bucket.object("ranged.bin")
    obj.get_writer().put_content(RANGE_DATA)
    assert obj.get_reader(byte_range=byte_range).read_all() == expected


def test_byte_range_status_and_headers(endpoint, bucket, http):
    """A ranged GET is 206 with Content-Range `bytes a-b/size` and the slice's Content-Length."""
    bucket.object("ranged.bin").get_writer().put_content(RANGE_DATA)
    resp = http.get(
        f"{endpoint}/v1/objects/{bucket.name}/ranged.bin",
        params={"provider": "ais"},
        headers={"Range": "bytes=2-4"},
    )
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == "bytes 2-4/1000"
    assert resp.headers["Content-Length"] == "3"
    assert resp.content == RANGE_DATA[2:5]


def test_unsatisfiable_range_is_416(bucket):
    """A range starting past the end is refused with 416, not served or retried."""
    obj = bucket.object("short.bin")
    obj.get_writer().put_content(b"0123456789")
    with pytest.raises(AISError) as err:
        obj.get_reader(byte_range="bytes=100-200").read_all()
    assert err.value.status_code == 416


def test_unsatisfiable_range_names_the_size(endpoint, bucket, http):
    """A 416 carries `Content-Range: bytes */<size>` (RFC 9110), so a client can retry in range."""
    bucket.object("short416.bin").get_writer().put_content(b"0123456789")
    resp = http.get(
        f"{endpoint}/v1/objects/{bucket.name}/short416.bin",
        params={"provider": "ais"},
        headers={"Range": "bytes=100-"},
    )
    assert resp.status_code == 416
    assert resp.headers["Content-Range"] == "bytes */10"


def test_head_reports_size_and_checksum(bucket):
    """HEAD with props=checksum reports the object's size and its xxhash2 (XXH64) checksum."""
    data = rand_bytes("head", 4321)
    obj = bucket.object("dir/headed.bin")
    obj.get_writer().put_content(data)
    attrs = obj.head("checksum")
    assert attrs.size == len(data)
    assert attrs.checksum_type == "xxhash2"
    assert attrs.checksum_value == xxhash.xxh64(data).hexdigest()
    assert attrs.present is True


def test_missing_object_is_obj_not_found(bucket):
    """GET of an object that was never written raises ErrObjNotFound (404, 'does not exist')."""
    with pytest.raises(ErrObjNotFound) as err:
        bucket.object("no/such/object").get_reader().read_all()
    assert err.value.status_code == 404
    assert "does not exist" in err.value.message
    assert f"ais://{bucket.name}/" in err.value.message


def test_head_missing_object_is_404(bucket):
    """HEAD of a missing object is a 404 error."""
    with pytest.raises(AISError) as err:
        bucket.object("nothing-here").head()
    assert err.value.status_code == 404


def test_delete_object(bucket):
    """A deleted object is gone from GET and from the listing; deleting it again is 404."""
    keep, gone = bucket.object("keep"), bucket.object("gone")
    keep.get_writer().put_content(b"k")
    gone.get_writer().put_content(b"g")
    gone.delete()
    with pytest.raises(ErrObjNotFound):
        gone.get_reader().read_all()
    assert [e.name for e in bucket.list_all_objects()] == ["keep"]
    with pytest.raises(AISError) as err:
        gone.delete()
    assert err.value.status_code == 404


def test_zero_byte_object(bucket):
    """An empty object round-trips as empty, with size 0 in HEAD and in the listing."""
    obj = bucket.object("empty")
    obj.get_writer().put_content(b"")
    assert obj.get_reader().read_all() == b""
    assert obj.head().size == 0
    [entry] = bucket.list_all_objects(props="name,size")
    assert (entry.name, entry.size) == ("empty", 0)


# ------------------------------------------------------------------------------------------
# listing: one 2500-object bucket shared by the listing tests

SET_COUNT, OTHER_COUNT = 2000, 500


def listing_contents():
    contents = {f"set/{i:05d}.bin": rand_bytes(("set", i), i % 53) for i in range(SET_COUNT)}
    contents.update({f"other/{i:04d}.txt": rand_bytes(("other", i), 7) for i in range(OTHER_COUNT)})
    return contents


@pytest.fixture(scope="module")
def listed_bucket(module_buckets):
    bucket = module_buckets("list")
    contents = listing_contents()
    put_objects(bucket, contents)
    return bucket, contents


def test_list_all_objects(listed_bucket):
    """list_all_objects returns every object once, sorted by name, with its size."""
    bucket, contents = listed_bucket
    entries = bucket.list_all_objects(props="name,size")
    assert len(entries) == len(contents) == SET_COUNT + OTHER_COUNT
    names = [e.name for e in entries]
    assert names == sorted(contents)
    for entry in entries:
        assert entry.size == len(contents[entry.name]), entry.name


def test_list_with_atime(listed_bucket):
    """props=atime fills each entry's atime, formatted like AIStore's default (RFC822)."""
    bucket, _ = listed_bucket
    entries = bucket.list_objects(props="name,size,atime", page_size=5).entries
    assert entries
    for entry in entries:
        assert re.fullmatch(r"\d\d [A-Z][a-z]{2} \d\d \d\d:\d\d UTC", entry.atime), entry.atime


def test_objects_spread_over_all_targets(client, listed_bucket):
    """HRW placement puts objects on every one of the 3 targets (per the listing's location)."""
    bucket, contents = listed_bucket
    targets = set(client.cluster().get_info().tmap)
    entries = bucket.list_all_objects(props="name,size,location")
    assert len(entries) == len(contents)
    owners = {}
    for entry in entries:
        match = re.match(r"t\[([^\]]+)\]", entry.location)
        assert match, f"location {entry.location!r} of {entry.name}"
        owners[match.group(1)] = owners.get(match.group(1), 0) + 1
    assert set(owners) == targets, owners
    assert min(owners.values()) > len(contents) // 10, owners


def test_list_objects_iter_pages(listed_bucket):
    """Paging with page_size=100 visits every object exactly once and then stops."""
    bucket, contents = listed_bucket
    names = [entry.name for entry in bucket.list_objects_iter(page_size=100)]
    assert len(names) == len(contents)
    assert len(set(names)) == len(names)
    assert names == sorted(contents)


def test_list_objects_single_page(listed_bucket):
    """One page holds page_size entries, a continuation token and a non-empty listing UUID."""
    bucket, contents = listed_bucket
    page = bucket.list_objects(page_size=100)
    assert len(page.entries) == 100
    assert [e.name for e in page.entries] == sorted(contents)[:100]
    assert page.continuation_token != ""
    assert page.uuid != ""
    second = bucket.list_objects(page_size=100, uuid=page.uuid, continuation_token=page.continuation_token)
    assert [e.name for e in second.entries] == sorted(contents)[100:200]


def test_list_with_odd_page_size(listed_bucket):
    """A page size that does not divide the count still ends with the last object."""
    bucket, _ = listed_bucket
    names = [e.name for e in bucket.list_objects_iter(prefix="other/", page_size=7)]
    assert names == [f"other/{i:04d}.txt" for i in range(OTHER_COUNT)]


@pytest.mark.parametrize(
    "prefix, expected_count",
    [("other/", OTHER_COUNT), ("set/", SET_COUNT), ("set/0012", 10), ("set/01999", 1), ("nope/", 0)],
)
def test_list_prefix(listed_bucket, prefix, expected_count):
    """Listing with a prefix returns exactly the objects whose names start with it."""
    bucket, contents = listed_bucket
    names = [e.name for e in bucket.list_all_objects(prefix=prefix)]
    assert len(names) == expected_count
    assert names == sorted(n for n in contents if n.startswith(prefix))


# ------------------------------------------------------------------------------------------
# cluster


def test_cluster_info_has_three_targets(client):
    """The cluster map shows 3 targets and the primary proxy, each with a reachable URL."""
    smap = client.cluster().get_info()
    assert len(smap.tmap) == 3
    assert smap.proxy_si.daemon_id in smap.pmap
    for node_id, node in smap.tmap.items():
        assert node.daemon_id == node_id
        assert node.daemon_type == "target"
        assert node.public_net.direct_url.startswith("http://127.0.0.1:")
    urls = {n.public_net.direct_url for n in list(smap.tmap.values()) + list(smap.pmap.values())}
    assert len(urls) == len(smap.tmap) + len(smap.pmap)


def test_cluster_is_ready(client):
    """is_ready() is True on a running cluster."""
    assert client.cluster().is_ready() is True


# ------------------------------------------------------------------------------------------
# invalid names (raw HTTP: the SDK and `requests` would normalize or escape these)

INVALID_NAMES = [
    "a/../b",
    "..",
    "../escape",
    "a/%2E%2E/b",
    "%2e%2e/x",
    "nul%00byte",
    "/absolute",
]


@pytest.mark.parametrize("raw_name", INVALID_NAMES)
@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_invalid_object_name_is_400(endpoint, bucket, raw_name, method):
    """A name that could escape the bucket is refused with 400 and a JSON error, never stored."""
    url = f"{endpoint}/v1/objects/{bucket.name}/{raw_name}?provider=ais"
    resp = raw_request(method, url, body=b"evil" if method == "PUT" else b"")
    body = assert_error_body(resp, 400)
    assert "name" in body["message"].lower(), body
    assert bucket.list_all_objects() == []


def test_valid_percent_encoded_name_is_decoded(endpoint, bucket):
    """A percent-encoded name is decoded once: `a%20b` on the wire is the object `a b`."""
    resp = raw_request("PUT", f"{endpoint}/v1/objects/{bucket.name}/{quote('dir/a b')}?provider=ais",
                       body=b"spaced")
    assert resp.status_code == 200, resp.text
    assert bucket.object("dir/a b").get_reader().read_all() == b"spaced"
