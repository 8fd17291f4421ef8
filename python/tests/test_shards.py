"""Files inside shards (archpath): TAR, TAR.GZ/TGZ, ZIP (stored and deflated) and TAR.LZ4 shards
built locally with Python's tarfile/zipfile (and the lz4 CLI), read through the SDK one member at a
time (object GET with archpath) and many at a time (GetBatch), in both response modes."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest
from aistore.sdk import ArchiveConfig, ListObjectFlag
from aistore.sdk.errors import AISError

from helpers import entry_name, make_tar, make_zip, parse_buffered, placeholder_name, rand_bytes, read_tar

MODES = pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "multipart"])

LONG_NAME = "long/" + "x" * 120 + "/name-longer-than-100-bytes.txt"

MEMBER_NAMES = [
    "a.txt",
    "dir/b.bin",
    "deep/er/c.json",
    "empty.txt",
    "ünï/名前.txt",
    LONG_NAME,
    "big.bin",
]


def member_contents(shard: str):
    """Deterministic content of every member; one is empty, one spans several 64 KiB chunks."""
    sizes = {"empty.txt": 0, "big.bin": 300 * 1024 + 17}
    return {name: rand_bytes((shard, name), sizes.get(name, 200 + 13 * i)) for i, name in enumerate(MEMBER_NAMES)}


def build_shard(kind: str, members) -> bytes:
    items = list(members.items())
    if kind == "tar":
        return make_tar(items)
    if kind in ("tar.gz", "tgz"):
        return make_tar(items, compression="gz")
    if kind == "zip-stored":
        return make_zip(items, zipfile.ZIP_STORED)
    if kind == "zip-deflated":
        return make_zip(items, zipfile.ZIP_DEFLATED)
    if kind == "tar.lz4":
        lz4 = shutil.which("lz4")
        assert lz4, "lz4 CLI required (scripts/test.sh installs it)"
        return subprocess.run([lz4, "-c", "-z"], input=make_tar(items), capture_output=True, check=True).stdout
    raise ValueError(kind)


SHARDS = {
    "tar": "shards/plain.tar",
    "tar.gz": "shards/gzipped.tar.gz",
    "tgz": "shards/gzipped.tgz",
    "zip-stored": "shards/stored.zip",
    "zip-deflated": "shards/deflated.zip",
    "tar.lz4": "shards/framed.tar.lz4",
}
KINDS = list(SHARDS)
SMALL_MEMBERS = ["a.txt", "dir/b.bin", "ünï/名前.txt"]


@pytest.fixture(scope="module")
def shards(module_buckets):
    """One bucket with a shard of every kind (same member names, different bytes) and a plain object."""
    bucket = module_buckets("shards")
    contents = {}
    for kind, obj_name in SHARDS.items():
        members = member_contents(obj_name)
        bucket.object(obj_name).get_writer().put_content(build_shard(kind, members))
        contents[obj_name] = members
    bucket.object("plain.txt").get_writer().put_content(b"just an object")
    return bucket, contents


def shard_of(shards_fixture, kind):
    bucket, contents = shards_fixture
    obj_name = SHARDS[kind]
    return bucket, obj_name, contents[obj_name]


def collect(batch, **kwargs):
    """Every (MossOut, content) the SDK yields, as a list."""
    return list(batch.get(**kwargs))


# ------------------------------------------------------------------------------------------
# listing a shard's files: bucket.list_archive (list flag ARCH_DIR)


@pytest.mark.parametrize("kind", KINDS)
def test_list_archive_names_every_file_with_its_size(shards, kind):
    """list_archive returns `<shard>/<file>` for every file, sorted, with sizes and the in-archive flag."""
    bucket, obj_name, members = shard_of(shards, kind)
    entries = bucket.list_archive(obj_name)
    assert [(e.name, e.size) for e in entries] == sorted((f"{obj_name}/{n}", len(b)) for n, b in members.items())
    assert all(e.is_ok() and e.flags & (1 << 7) for e in entries)


def test_list_archive_can_include_the_shard_itself(shards):
    bucket, obj_name, members = shard_of(shards, "zip-deflated")
    entries = bucket.list_archive(obj_name, include_archive_obj=True, page_size=3)
    assert entries[0].name == obj_name
    assert entries[0].flags & (1 << 9), "the shard is marked as an archive"
    assert len(entries) == 1 + len(members)


def test_list_with_arch_dir_over_the_bucket_pages_through_shards(shards):
    """Paging with small pages never loses or repeats a file, even when a page ends inside a shard."""
    bucket, contents = shards
    pages = list(bucket.list_objects_iter(prefix="shards/", page_size=4, flags=[ListObjectFlag.ARCH_DIR]))
    got = [e.name for e in pages]
    expect = sorted(
        [name for name in contents] + [f"{name}/{member}" for name, members in contents.items() for member in members]
    )
    assert got == expect
    plain = [e.name for e in bucket.list_all_objects(prefix="shards/")]
    assert plain == sorted(contents)


# ------------------------------------------------------------------------------------------
# one member: object GET with ?archpath=


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("member", MEMBER_NAMES)
def test_get_member_with_archpath(shards, kind, member):
    """get_reader(archive_config=ArchiveConfig(archpath=m)) returns exactly that member's bytes."""
    bucket, obj_name, members = shard_of(shards, kind)
    reader = bucket.object(obj_name).get_reader(archive_config=ArchiveConfig(archpath=member))
    assert reader.read_all() == members[member]


@pytest.mark.parametrize("kind", KINDS)
def test_get_missing_member_is_404(shards, kind):
    """A member the shard does not contain is a 404 that says it does not exist."""
    bucket, obj_name, _ = shard_of(shards, kind)
    with pytest.raises(AISError) as err:
        bucket.object(obj_name).get_reader(archive_config=ArchiveConfig(archpath="no/such.txt")).read_all()
    assert err.value.status_code == 404
    assert "does not exist" in err.value.message


def test_get_member_leading_slash(shards):
    """One leading '/' in archpath is ignored."""
    bucket, obj_name, members = shard_of(shards, "tar")
    reader = bucket.object(obj_name).get_reader(archive_config=ArchiveConfig(archpath="/dir/b.bin"))
    assert reader.read_all() == members["dir/b.bin"]


def test_archpath_on_non_archive_is_an_error(shards):
    """archpath on an object that is not a shard is a 4xx error, not garbage bytes."""
    bucket, _ = shards
    with pytest.raises(AISError) as err:
        bucket.object("plain.txt").get_reader(archive_config=ArchiveConfig(archpath="a.txt")).read_all()
    assert 400 <= err.value.status_code < 500


def test_whole_shard_is_still_a_plain_object(shards):
    """Without archpath a shard reads back as the exact bytes that were uploaded."""
    bucket, obj_name, members = shard_of(shards, "tar")
    data = bucket.object(obj_name).get_reader().read_all()
    assert [(m.name, m.data) for m in read_tar(data)] == list(members.items())


# ------------------------------------------------------------------------------------------
# many members: GetBatch with archpath


@pytest.mark.parametrize("kind", KINDS)
@MODES
def test_batch_members_content_and_order(client, shards, kind, streaming):
    """Every member of a shard, requested in reverse order, comes back in that order with its bytes."""
    bucket, obj_name, members = shard_of(shards, kind)
    order = list(reversed(MEMBER_NAMES))
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    for member in order:
        batch.add(obj_name, archpath=member)
    results = collect(batch)
    assert len(results) == len(order)
    for member, (out, content) in zip(order, results):
        assert content == members[member], member
        assert out.obj_name == obj_name
        assert out.archpath == member
        assert out.err_msg is None
        if not streaming:
            assert out.size == len(members[member])


@pytest.mark.parametrize("kind", ["tar", "tgz", "zip-deflated"])
@MODES
def test_batch_member_names(client, shards, kind, streaming):
    """Members are named `<bucket>/<shard>/<member>`; plain objects in between `<bucket>/<obj>`."""
    bucket, obj_name, members = shard_of(shards, kind)
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    batch.add(obj_name, archpath="a.txt").add("plain.txt").add(obj_name, archpath=LONG_NAME)
    raw = batch.get(raw=True)
    try:
        if streaming:
            got = read_tar(raw)
        else:
            _, got = parse_buffered(raw.read(), raw.headers["Content-Type"])
    finally:
        raw.close()
    assert [m.name for m in got] == [
        f"{bucket.name}/{obj_name}/a.txt",
        f"{bucket.name}/plain.txt",
        f"{bucket.name}/{obj_name}/{LONG_NAME}",
    ]
    assert [m.data for m in got] == [members["a.txt"], b"just an object", members[LONG_NAME]]


def test_batch_members_across_shard_kinds(client, shards):
    """One batch mixing members of every shard kind and plain objects keeps order and bytes."""
    bucket, contents = shards
    batch = client.batch(bucket=bucket, streaming_get=False)
    expected = []
    for member in SMALL_MEMBERS:
        for obj_name, members in contents.items():
            batch.add(obj_name, archpath=member)
            expected.append((obj_name, member, members[member]))
        batch.add("plain.txt")
        expected.append(("plain.txt", None, b"just an object"))
    results = collect(batch)
    assert len(results) == len(expected)
    for (obj_name, member, data), (out, content) in zip(expected, results):
        assert (out.obj_name, out.archpath or None) == (obj_name, member)
        assert content == data
        assert out.size == len(data)


@pytest.mark.parametrize("kind", ["tar", "tgz", "zip-stored", "zip-deflated", "tar.lz4"])
@MODES
def test_batch_member_ranges(client, shards, kind, streaming):
    """start/length apply to the member's bytes; MossOut.size is the range length."""
    bucket, obj_name, members = shard_of(shards, kind)
    big = members["big.bin"]
    cases = [("big.bin", 3, 10), ("big.bin", 200_000, 70_000), ("big.bin", 300_000, -1), ("a.txt", 0, -1)]
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    expected = []
    for member, start, length in cases:
        batch.add(obj_name, archpath=member, start=start, length=length)
        data = big if member == "big.bin" else members[member]
        expected.append(data[start:] if length == -1 else data[start : start + length])
    results = collect(batch)
    assert [c for _, c in results] == expected
    if not streaming:
        assert [o.size for o, _ in results] == [len(e) for e in expected]


@MODES
def test_batch_zero_size_member_is_not_a_placeholder(client, shards, streaming):
    """An empty member that exists is a real entry of size 0 under its own name."""
    bucket, obj_name, _ = shard_of(shards, "tar")
    batch = client.batch(bucket=bucket, streaming_get=streaming)
    batch.add(obj_name, archpath="empty.txt").add(obj_name, archpath="a.txt")
    results = collect(batch)
    assert results[0][1] == b""
    assert results[0][0].err_msg is None
    assert results[1][1] != b""
    if not streaming:
        assert results[0][0].size == 0


@pytest.mark.parametrize("kind", ["tar", "tgz", "zip-deflated"])
@MODES
def test_batch_missing_member_placeholder(client, shards, kind, streaming):
    """With cont_on_err a missing member is an empty `__404__/<bucket>/<shard>/<member>` entry."""
    bucket, obj_name, members = shard_of(shards, kind)
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=True)
    batch.add(obj_name, archpath="a.txt").add(obj_name, archpath="nope/missing.txt").add(obj_name, archpath="dir/b.bin")
    results = collect(batch)
    assert [c for _, c in results] == [members["a.txt"], b"", members["dir/b.bin"]]
    assert results[0][0].err_msg is None and results[2][0].err_msg is None
    assert results[1][0].err_msg is not None
    if not streaming:
        assert "does not exist" in results[1][0].err_msg
        assert results[1][0].size == 0

    batch.add(obj_name, archpath="a.txt").add(obj_name, archpath="nope/missing.txt")
    raw = batch.get(raw=True)
    try:
        if streaming:
            names = [m.name for m in read_tar(raw)]
        else:
            names = [m.name for m in parse_buffered(raw.read(), raw.headers["Content-Type"])[1]]
    finally:
        raw.close()
    assert names == [
        entry_name(bucket.name, obj_name, "a.txt"),
        placeholder_name(bucket.name, obj_name, "nope/missing.txt"),
    ]


@MODES
def test_batch_missing_shard_placeholder(client, shards, streaming):
    """A member of a shard object that does not exist is a placeholder that keeps the archpath."""
    bucket, _ = shards
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=True)
    batch.add("plain.txt").add("shards/absent.tar", archpath="a.txt")
    raw = batch.get(raw=True)
    try:
        if streaming:
            members = read_tar(raw)
        else:
            members = parse_buffered(raw.read(), raw.headers["Content-Type"])[1]
    finally:
        raw.close()
    assert [m.name for m in members] == [
        f"{bucket.name}/plain.txt",
        placeholder_name(bucket.name, "shards/absent.tar", "a.txt"),
    ]
    assert members[1].data == b""


@MODES
def test_batch_missing_member_strict_is_404(client, shards, streaming):
    """Without cont_on_err a missing member fails the whole batch with 404 and no entries."""
    bucket, obj_name, _ = shard_of(shards, "tar")
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=False)
    batch.add(obj_name, archpath="a.txt").add(obj_name, archpath="nope.txt")
    received = []
    with pytest.raises(AISError) as err:
        for entry in batch.get():
            received.append(entry)
    assert received == []
    assert err.value.status_code == 404
    assert "does not exist" in err.value.message


def test_batch_member_leading_slash_not_doubled(client, shards):
    """archpath '/a.txt' finds `a.txt` and the member name has no doubled '/'."""
    bucket, obj_name, members = shard_of(shards, "tar")
    batch = client.batch(bucket=bucket)
    batch.add(obj_name, archpath="/a.txt")
    raw = batch.get(raw=True)
    try:
        got = read_tar(raw)
    finally:
        raw.close()
    assert [(m.name, m.data) for m in got] == [(f"{bucket.name}/{obj_name}/a.txt", members["a.txt"])]


def test_batch_many_members_same_shard_repeated(client, shards):
    """The same members requested many times over (200 entries) all arrive, in order."""
    bucket, obj_name, members = shard_of(shards, "tar")
    order = [MEMBER_NAMES[(i * 5) % len(MEMBER_NAMES)] for i in range(200)]
    batch = client.batch(bucket=bucket)
    for member in order:
        batch.add(obj_name, archpath=member)
    results = collect(batch)
    assert len(results) == 200
    assert [c for _, c in results] == [members[m] for m in order]


# ------------------------------------------------------------------------------------------
# damaged and foreign-made shards


def _flip_member_byte(zip_bytes: bytes, content: bytes) -> bytes:
    """A stored ZIP with one byte of `content` flipped: its CRC-32 no longer matches."""
    at = zip_bytes.find(content[:32])
    assert at > 0
    damaged = bytearray(zip_bytes)
    damaged[at + 5] ^= 0xFF
    return bytes(damaged)


@pytest.fixture(scope="module")
def damaged(module_buckets):
    """A ZIP whose a.txt fails its CRC, a .tgz whose gzip trailer fails, a healthy TAR."""
    bucket = module_buckets("damaged")
    members = {"a.txt": rand_bytes("d-a", 3000), "b.bin": rand_bytes("d-b", 5000)}
    zip_bytes = make_zip(list(members.items()), zipfile.ZIP_STORED)
    bucket.object("bad.zip").get_writer().put_content(_flip_member_byte(zip_bytes, members["a.txt"]))
    tgz = bytearray(make_tar(list(members.items()), compression="gz"))
    tgz[-8] ^= 0xFF
    bucket.object("badcrc.tgz").get_writer().put_content(bytes(tgz))
    bucket.object("good.tar").get_writer().put_content(make_tar(list(members.items())))
    return bucket, members


@MODES
def test_batch_damaged_zip_member_is_a_placeholder(client, damaged, streaming):
    """A ZIP member failing its CRC becomes a placeholder; its neighbours (same shard too) arrive."""
    bucket, members = damaged
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=True)
    batch.add("good.tar", archpath="a.txt").add("bad.zip", archpath="a.txt").add("bad.zip", archpath="b.bin")
    results = collect(batch)
    assert [c for _, c in results] == [members["a.txt"], b"", members["b.bin"]]
    if not streaming:
        assert "crc32 mismatch" in results[1][0].err_msg
        assert results[0][0].err_msg is None and results[2][0].err_msg is None


@MODES
@pytest.mark.parametrize(
    "shard,status,text",
    [("bad.zip", 410, "crc32 mismatch"), ("badcrc.tgz", 400, "corrupt gzip stream")],
)
def test_batch_damaged_member_strict_fails_before_any_entry(client, damaged, streaming, shard, status, text):
    """Without cont_on_err a damaged member fails the batch with a 4xx before any entry."""
    bucket, _ = damaged
    batch = client.batch(bucket=bucket, streaming_get=streaming, cont_on_err=False)
    batch.add("good.tar", archpath="b.bin").add(shard, archpath="a.txt")
    received = []
    with pytest.raises(AISError) as err:
        for entry in batch.get():
            received.append(entry)
    assert received == []
    assert err.value.status_code == status
    assert text in err.value.message


def test_get_archpath_relative_to_the_object(damaged):
    """archpath 'good.tar/a.txt' on object good.tar reads a.txt, as AIStore does."""
    bucket, members = damaged
    reader = bucket.object("good.tar").get_reader(archive_config=ArchiveConfig(archpath="good.tar/a.txt"))
    assert reader.read_all() == members["a.txt"]
