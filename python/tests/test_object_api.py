"""The object API around PUT and GET, through the unmodified SDK as its own integration tests use
it: multipart upload, append and the file writer, custom properties, HEAD with props, and the
non-recursive listing flags."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import xxhash
from aistore.sdk.errors import AISError
from aistore.sdk.list_object_flag import ListObjectFlag

from helpers import rand_bytes

# ------------------------------------------------------------------------------------------
# multipart upload


def _upload(obj, parts):
    """create → add_part(n).put_content(data) for each (n, data) → complete."""
    mpu = obj.multipart_upload().create()
    assert mpu.upload_id
    for n, data in parts:
        mpu.add_part(n).put_content(data)
    return mpu.complete()


def test_multipart_basic_and_out_of_order(bucket):
    """Parts sent 3, 1, 2 (complete lists them in that order) make the object 1+2+3."""
    parts = {n: rand_bytes(f"mpu{n}", 1000 + n) for n in (1, 2, 3)}
    obj = bucket.object("mpu/basic")
    resp = _upload(obj, [(3, parts[3]), (1, parts[1]), (2, parts[2])])
    assert resp.status_code == 200
    data = obj.get_reader().read_all()
    assert data == parts[1] + parts[2] + parts[3]
    attrs = obj.head("checksum,chunked")
    assert attrs.size == len(data)
    assert attrs.checksum_type == "xxhash2"
    assert attrs.checksum_value == xxhash.xxh64(data).hexdigest()
    assert attrs.chunks.chunk_count == 3
    assert attrs.chunks.max_chunk_size == 1003


def test_multipart_chunk_info_three_by_5mib(bucket):
    """AIStore's test_head_v2_multipart_chunk_info: 3 × 5 MiB → count 3, max 5 MiB, size 15 MiB."""
    obj = bucket.object("mpu/15mib")
    part = rand_bytes("5mib", 5 * 1024 * 1024)
    _upload(obj, [(1, part), (2, part), (3, part)])
    attrs = obj.head("chunked")
    assert attrs.size == 15 * 1024 * 1024
    assert attrs.chunks.chunk_count == 3
    assert attrs.chunks.max_chunk_size == 5 * 1024 * 1024


def test_multipart_parallel_parts(bucket):
    """Five parts PUT from three threads at once assemble in number order."""
    obj = bucket.object("mpu/parallel")
    mpu = obj.multipart_upload().create()
    parts = {n: rand_bytes(f"par{n}", 64 * 1024 + n) for n in range(1, 6)}
    writers = {n: mpu.add_part(n) for n in parts}
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda n: writers[n].put_content(parts[n]), parts))
    assert mpu.complete().status_code == 200
    assert obj.get_reader().read_all() == b"".join(parts[n] for n in sorted(parts))


def test_multipart_errors_match_aistore(bucket):
    """Empty part, complete without parts, duplicate part numbers, twice, after abort."""
    obj = bucket.object("mpu/errors")
    mpu = obj.multipart_upload().create()
    with pytest.raises(AISError) as err:
        mpu.add_part(1).put_content(b"")
    assert err.value.status_code == 400
    assert "invalid size (0)" in err.value.message
    with pytest.raises(AISError) as err:
        mpu.complete()
    assert err.value.status_code == 400
    assert "no chunks" in err.value.message

    # The second upload of part 1 replaces the first; complete [1, 1] is a partial completion.
    mpu.add_part(1).put_content(b"first")
    with pytest.raises(AISError) as err:
        mpu.complete()
    assert err.value.status_code == 400
    assert "partial completion" in err.value.message

    dup = obj.multipart_upload().create()
    dup.add_part(1).put_content(b"only")
    assert dup.complete().status_code == 200
    with pytest.raises(AISError) as err:
        dup.complete()
    assert err.value.status_code == 404
    assert "does not exist" in err.value.message
    assert obj.get_reader().read_all() == b"only"

    aborted = obj.multipart_upload().create()
    aborted.add_part(1).put_content(b"never visible")
    assert aborted.abort().status_code == 200
    with pytest.raises(AISError) as err:
        aborted.complete()
    assert err.value.status_code == 404
    assert "does not exist" in err.value.message
    assert obj.get_reader().read_all() == b"only"


def test_multipart_and_put_overwrite_each_other(bucket):
    """MPU over a PUT replaces it at complete (the old bytes stay readable until then); a PUT over
    an MPU object makes it monolithic again (no chunk info)."""
    obj = bucket.object("mpu/overwrite")
    obj.get_writer().put_content(b"plain")
    mpu = obj.multipart_upload().create()
    mpu.add_part(1).put_content(b"from-")
    mpu.add_part(2).put_content(b"parts")
    assert obj.get_reader().read_all() == b"plain"
    mpu.complete()
    assert obj.get_reader().read_all() == b"from-parts"
    assert obj.head("chunked").chunks is not None
    obj.get_writer().put_content(b"plain again")
    assert obj.get_reader().read_all() == b"plain again"
    assert obj.head("chunked").chunks is None


def test_multipart_part_via_as_file(bucket, tmp_path):
    """A part written through add_part(1).as_file() (append params plus uploadId) is a part."""
    obj = bucket.object("mpu/as-file")
    mpu = obj.multipart_upload().create()
    with mpu.add_part(1).as_file() as f:
        f.write(b"part-one|")
    path = tmp_path / "p2"
    path.write_bytes(b"part-two")
    mpu.add_part(2).put_file(path)
    mpu.complete()
    assert obj.get_reader().read_all() == b"part-one|part-two"


# ------------------------------------------------------------------------------------------
# append and the file writer


def test_append_handles_and_flush(bucket):
    """Appends carry the handle chain; nothing shows before the flush; the flush returns ''."""
    obj = bucket.object("append/log")
    obj.get_writer().put_content(b"original|")
    writer = obj.get_writer()
    handle = ""
    for piece in (b"one|", b"two|", b"three"):
        handle = writer.append_content(piece, handle=handle)
        assert handle
        assert obj.get_reader().read_all() == b"original|"
    assert writer.append_content(b"", handle=handle, flush=True) == ""
    assert obj.get_reader().read_all() == b"original|one|two|three"
    attrs = obj.head("checksum,version")
    assert attrs.checksum_value == xxhash.xxh64(b"original|one|two|three").hexdigest()
    assert attrs.obj_version == "2"


def test_file_writer_modes(bucket):
    """as_file("w") truncates at once and shows the appends after close; "a" keeps the old
    content; "a" on a missing object stays 404 until the flush."""
    obj = bucket.object("writer/w")
    obj.get_writer().put_content(b"existing-content")
    f = obj.get_writer().as_file("w")
    assert obj.get_reader().read_all() == b""
    for part in (b"new-data1", b"new-data2", b"new-data3"):
        f.write(part)
        assert obj.get_reader().read_all() == b""
    f.close()
    assert obj.get_reader().read_all() == b"new-data1new-data2new-data3"

    obj_a = bucket.object("writer/a")
    obj_a.get_writer().put_content(b"existing-content")
    with obj_a.get_writer().as_file("a") as f:
        f.write(b"+more")
        assert obj_a.get_reader().read_all() == b"existing-content"
    assert obj_a.get_reader().read_all() == b"existing-content+more"

    fresh = bucket.object("writer/fresh")
    with fresh.get_writer().as_file("a") as f:
        f.write(b"first words")
        with pytest.raises(AISError) as err:
            fresh.get_reader().read_all()
        assert err.value.status_code == 404
    assert fresh.get_reader().read_all() == b"first words"


def test_append_errors(bucket, http, endpoint):
    """Flush without a handle, an unknown append_type and a forged handle are 400s."""
    obj = bucket.object("append/bad")
    writer = obj.get_writer()
    with pytest.raises(AISError) as err:
        writer.append_content(b"", handle="", flush=True)
    assert err.value.status_code == 400
    assert "empty source" in err.value.message
    url = f"{endpoint}/v1/objects/{bucket.name}/append/bad"
    resp = http.put(url, params={"provider": "ais", "append_type": "sideways"}, data=b"x")
    assert resp.status_code == 400
    assert 'expecting either "append" or "flush"' in resp.json()["message"]
    handle = writer.append_content(b"abc")
    tid = handle.split("|")[0]
    forged = f"{tid}|../../../etc|xxhash2|0"
    resp = http.put(
        url,
        params={"provider": "ais", "append_type": "append", "append_handle": forged},
        data=b"x",
    )
    assert resp.status_code == 400
    assert "invalid APPEND handle" in resp.json()["message"]


# ------------------------------------------------------------------------------------------
# custom properties and HEAD props


def _custom_lines(headers) -> dict:
    return dict(kv.split("=", 1) for kv in headers.get("Ais-Custom-Md", "").split(", ") if kv)


def test_custom_props_merge_and_replace(bucket):
    """PATCH merges by default, replaces with replace_existing; data, version, last-modified stay."""
    obj = bucket.object("custom/obj")
    obj.get_writer().put_content(b"payload")
    before = obj.head("version,last-modified,etag")
    obj.get_writer().set_custom_props({"k1": "v1", "k2": "v2"})
    obj.get_writer().set_custom_props({"k2": "two", "k3": "v3"})
    assert obj.head("custom").custom_metadata == {"k1": "v1", "k2": "two", "k3": "v3"}
    obj.get_writer().set_custom_props({"only": "this"}, replace_existing=True)
    after = obj.head("custom,version,last-modified,etag")
    assert after.custom_metadata == {"only": "this"}
    assert after.obj_version == before.obj_version == "1"
    assert after.last_modified == before.last_modified
    assert after.etag == before.etag
    assert obj.get_reader().read_all() == b"payload"
    entries = bucket.list_all_objects(prefix="custom/", props="name,custom")
    assert [e.name for e in entries] == ["custom/obj"]


def test_custom_props_errors(bucket, http, endpoint):
    """A value that is not a map of strings is a 400; a missing object a 404."""
    obj = bucket.object("custom/bad")
    obj.get_writer().put_content(b"x")
    url = f"{endpoint}/v1/objects/{bucket.name}/custom/bad"
    resp = http.patch(url, params={"provider": "ais"},
                      json={"action": "", "name": "", "value": ["not", "a", "map"]})
    assert resp.status_code == 400
    assert "set-custom" in resp.json()["message"]
    with pytest.raises(AISError) as err:
        bucket.object("custom/missing").get_writer().set_custom_props({"a": "b"})
    assert err.value.status_code == 404


def test_head_props_only_what_is_asked(bucket, http, endpoint):
    """Default head() has no ETag/Last-Modified/version; each prop adds exactly its headers."""
    obj = bucket.object("head/props")
    data = b"sixteen bytes!!!"
    obj.get_writer().put_content(data)
    default = obj.head()
    assert default.size == len(data)
    assert default.present is True
    assert default.last_modified == "" and default.etag == "" and default.obj_version == ""
    both = obj.head("last-modified,etag")
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
                        both.last_modified)
    assert both.etag.startswith("v1-") and '"' not in both.etag
    assert obj.head("etag").last_modified == ""
    full = obj.props
    assert full.checksum_value == xxhash.xxh64(data).hexdigest()
    assert full.obj_version == "1"
    assert full.mirror_copies == 1
    assert full.location.startswith("t[")
    assert int(full.access_time) > 10**18  # nanoseconds
    url = f"{endpoint}/v1/objects/{bucket.name}/head/props"
    resp = http.head(url, params={"provider": "ais", "props": "cached"}, allow_redirects=True)
    assert resp.status_code == 400
    resp = http.head(url, params={"provider": "ais", "props": "name,size"}, allow_redirects=True)
    assert resp.headers["Content-Length"] == str(len(data))
    assert "ETag" not in resp.headers and "Ais-Custom-Md" not in resp.headers


# ------------------------------------------------------------------------------------------
# listing flags


@pytest.fixture
def tree(bucket):
    names = ["X/alpha.txt", "X/beta.bin", "X/gamma.txt", "X/subdir/one.txt", "X/subdir/two.txt",
             "X/subdir/deep/three.txt", "Y/other.txt"]
    for name in names:
        bucket.object(name).get_writer().put_content(name.encode())
    return bucket


def _names(bucket, prefix, flags, page_size=0):
    return [e.name for e in bucket.list_all_objects(prefix=prefix, flags=flags,
                                                    page_size=page_size)]


def test_no_recursion_lists_one_level(tree):
    """NO_RECURSION: the level's objects and one entry per subdirectory (trailing /, dir flag)."""
    expected = ["X/alpha.txt", "X/beta.bin", "X/gamma.txt", "X/subdir/"]
    assert _names(tree, "X/", [ListObjectFlag.NO_RECURSION]) == expected
    # NO_DIRS is not honoured for ais buckets, as in AIStore.
    assert _names(tree, "X/", [ListObjectFlag.NO_RECURSION, ListObjectFlag.NO_DIRS]) == expected
    assert _names(tree, "X/subdir/", [ListObjectFlag.NO_RECURSION]) == [
        "X/subdir/deep/", "X/subdir/one.txt", "X/subdir/two.txt"]
    assert _names(tree, "", [ListObjectFlag.NO_RECURSION]) == ["X/", "Y/"]
    assert _names(tree, "X/subdir/", []) == [
        "X/subdir/deep/three.txt", "X/subdir/one.txt", "X/subdir/two.txt"]
    entries = tree.list_objects(prefix="X/", flags=[ListObjectFlag.NO_RECURSION]).entries
    dirs = [e for e in entries if e.name.endswith("/")]
    assert [(e.name, e.flags & 256) for e in dirs] == [("X/subdir/", 256)]


def test_no_recursion_pages(tree):
    """Pages of 2 under NO_RECURSION: every entry once, in order, across continuation tokens."""
    expected = ["X/alpha.txt", "X/beta.bin", "X/gamma.txt", "X/subdir/"]
    assert _names(tree, "X/", [ListObjectFlag.NO_RECURSION], page_size=2) == expected
    first = tree.list_objects(prefix="X/", flags=[ListObjectFlag.NO_RECURSION], page_size=2)
    assert len(first.entries) == 2


# ------------------------------------------------------------------------------------------
# several files of one shard in one GET (archmode / archregx)

ARCH_FILES = [(f"file{i}.{ext}", rand_bytes(f"{i}{ext}", 100 + i)) for ext in ("txt", "cls")
              for i in (1, 2, 3)]


def _shard(fmt: str) -> bytes:
    from test_shards import build_shard  # pylint: disable=import-outside-toplevel

    kind = {".tar": "tar", ".tgz": "tgz", ".tar.lz4": "tar.lz4", ".zip": "zip-deflated"}[fmt]
    return build_shard(kind, dict(ARCH_FILES))


@pytest.mark.parametrize("fmt", [".tar", ".tgz", ".tar.lz4", ".zip"])
def test_multi_file_read_from_a_shard(bucket, fmt):
    """AIStore's test_get_archregex, for every shard format: archpath reads one file; prefix and
    wdskey return the matching files as a plain TAR in archive order; ARCH_DIR lists 1 + 6."""
    import io  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel

    from aistore.sdk.archive_config import ArchiveConfig, ArchiveMode  # pylint: disable=import-outside-toplevel

    name = f"arch/shard{fmt}"
    obj = bucket.object(name)
    obj.get_writer().put_content(_shard(fmt))
    files = dict(ARCH_FILES)
    one = obj.get_reader(archive_config=ArchiveConfig(archpath="file1.txt")).read_all()
    assert one == files["file1.txt"]
    for mode, pattern, expected in [("prefix", "file2", ["file2.txt", "file2.cls"]),
                                    ("wdskey", "file3", ["file3.txt", "file3.cls"]),
                                    ("suffix", ".cls", ["file1.cls", "file2.cls", "file3.cls"]),
                                    ("regexp", r"^file[13]\.txt$", ["file1.txt", "file3.txt"])]:
        config = ArchiveConfig(regex=pattern, mode=ArchiveMode(mode))
        data = obj.get_reader(archive_config=config).read_all()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert tar.getnames() == expected, (mode, pattern)
            for member in expected:
                assert tar.extractfile(member).read() == files[member]
    listed = bucket.list_objects(prefix=name, props="name",
                                 flags=[ListObjectFlag.ARCH_DIR]).entries
    assert len(listed) == 7


def test_multi_file_read_errors(bucket, http, endpoint):
    """No match is a 404; a bad mode, a broken or hostile regex, a range, archpath with archmode
    are 400s — and the node keeps serving."""
    from helpers import make_tar  # pylint: disable=import-outside-toplevel

    bucket.object("arch/s.tar").get_writer().put_content(make_tar(ARCH_FILES))
    url = f"{endpoint}/v1/objects/{bucket.name}/arch/s.tar"

    def get(params, headers=None):
        return http.get(url, params={"provider": "ais", "archpath": "", **params},
                        headers=headers or {})

    resp = get({"archmode": "prefix", "archregx": "nothing-like-this"})
    assert resp.status_code == 404
    assert "does not exist" in resp.json()["message"]
    for params in [{"archmode": "glob", "archregx": "x"},
                   {"archmode": "regexp", "archregx": "(unclosed"},
                   {"archmode": "regexp", "archregx": r"\w{1000}\w{1000}\w{1000}"},
                   {"archmode": "regexp", "archregx": "a" * 10_000},
                   {"archmode": "prefix", "archregx": "file", "archpath": "file1.txt"}]:
        resp = get(params)
        assert resp.status_code == 400, params
        assert resp.json()["message"], params
    resp = get({"archmode": "prefix", "archregx": "file"}, headers={"Range": "bytes=0-9"})
    assert resp.status_code == 400
    # A catastrophic pattern for backtracking engines is answered at once (no match: 404).
    resp = get({"archmode": "regexp", "archregx": "(a+)+$"})
    assert resp.status_code == 404
    assert bucket.object("arch/s.tar").get_reader(
    ).read_all() == make_tar(ARCH_FILES)


# ------------------------------------------------------------------------------------------
# node logs and node status through the proxy (/v1/reverse/daemon)


def test_performance_and_node_status(client, bucket):
    """get_performance(): one status per target, with AIStore's fields and live counters."""
    bucket.object("perf/o").get_writer().put_content(b"counted")
    bucket.object("perf/o").get_reader().read_all()
    smap = client.cluster().get_info()
    perf = client.cluster().get_performance()
    assert sorted(perf) == sorted(smap.tmap)
    for tid, status in perf.items():
        assert status["snode"]["daemon_id"] == tid
        assert set(status) >= {"tracker", "capacity", "sys_info", "cluster", "smap_version"}
        assert status["capacity"]["mountpaths"]
    total_puts = sum(int(s["tracker"]["put.n"]["v"]) for s in perf.values())
    assert total_puts >= 1


def test_node_logs(client, http, endpoint):
    """INFO log non-empty; error log answers text; the archive is a .tar.gz of log files; one
    entry per target from get_cluster_logs(); a missing or unknown node id is a 4xx."""
    import io  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel

    from aistore.sdk.enums import LogSeverity  # pylint: disable=import-outside-toplevel

    cluster = client.cluster()
    smap = cluster.get_info()
    tid = sorted(smap.tmap)[0]
    info = cluster.get_node_log(tid)
    assert "target started" in info or "INFO" in info
    assert isinstance(cluster.get_node_log(tid, LogSeverity.ERROR), str)
    archive = cluster.get_node_log_archive(tid)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
    assert names and all(".INFO" in n for n in names)
    logs = cluster.get_cluster_logs()
    assert sorted(logs) == sorted(smap.tmap)
    assert cluster.get_node_log(smap.proxy_si.daemon_id)
    resp = http.get(f"{endpoint}/v1/reverse/daemon", params={"what": "log"})
    assert resp.status_code == 400 and "missing node ID" in resp.json()["message"]
    resp = http.get(f"{endpoint}/v1/reverse/daemon", params={"what": "log"},
                    headers={"Ais-Node-Id": "nosuchnode"})
    assert resp.status_code == 404
    resp = http.get(f"{endpoint}/v1/reverse/daemon", params={"what": "log", "severity": "x"},
                    headers={"Ais-Node-Id": tid})
    assert resp.status_code == 400 and "unknown log severity" in resp.json()["message"]


# ------------------------------------------------------------------------------------------
# promote


def test_promote_directory_then_recursive_with_delete(client, bucket, promote_root):
    """AIStore's test_promote: non-recursive → only the top file; then recursive + overwrite +
    delete_source → both files, the top one overwritten, no regular files left behind."""
    import pathlib  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel

    base = pathlib.Path(tempfile.mkdtemp(prefix="prm-", dir=promote_root)) / "promote_folder"
    (base / "inner_folder").mkdir(parents=True)
    (base / "test_file_top").write_bytes(b"top v1")
    (base / "inner_folder" / "test_file_inner").write_bytes(b"inner")
    (base / "link").symlink_to("/etc/hostname")
    obj = bucket.object("promoted_obj/")

    job_id = obj.promote(str(base))
    if job_id:
        client.job(job_id).wait(timeout=60)
    assert [e.name for e in bucket.list_all_objects()] == ["promoted_obj/test_file_top"]
    assert bucket.object("promoted_obj/test_file_top").get_reader().read_all() == b"top v1"

    (base / "test_file_top").write_bytes(b"top v2")
    job_id = obj.promote(str(base), recursive=True, overwrite_dest=True, delete_source=True)
    if job_id:
        client.job(job_id).wait(timeout=60)
    names = sorted(e.name for e in bucket.list_all_objects())
    assert names == ["promoted_obj/inner_folder/test_file_inner", "promoted_obj/test_file_top"]
    assert bucket.object("promoted_obj/test_file_top").get_reader().read_all() == b"top v2"
    assert bucket.object("promoted_obj/inner_folder/test_file_inner").get_reader(
    ).read_all() == b"inner"
    left = [p for p in base.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not left, left
    assert (base / "link").is_symlink()  # skipped, not followed, not deleted


def test_promote_refuses_escapes(bucket, promote_root, tmp_path):
    """Sources outside the root, with '..', or a symlink out of the root are 400s; a missing
    source is a 404; an empty directory a 400."""
    import pathlib  # pylint: disable=import-outside-toplevel

    root = pathlib.Path(promote_root)
    (root / "empty-dir").mkdir(exist_ok=True)
    escape = root / "escape"
    if not escape.is_symlink():
        escape.symlink_to(tmp_path)
    (tmp_path / "secret").write_bytes(b"not yours")
    obj = bucket.object("x")
    for src, status, text in [("/etc/passwd", 400, "must be under"),
                              (f"{root}/../../etc/passwd", 400, ".."),
                              ("relative/path", 400, "absolute"),
                              (str(escape), 400, "outside"),
                              (f"{root}/no-such-file", 404, "no such file"),
                              (f"{root}/empty-dir", 400, "is empty")]:
        with pytest.raises(AISError) as err:
            obj.promote(src)
        assert err.value.status_code == status, src
        assert text in err.value.message.lower(), (src, err.value.message)
    assert not bucket.list_all_objects()


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_parallel_download(bucket, workers):
    """get_reader(num_workers=k): HEAD props=chunked for the size, then k ranged GETs — for a
    plain object and for one made by a multipart upload."""
    plain = rand_bytes(f"par-dl-{workers}", 100 * 1024)
    bucket.object("dl/plain").get_writer().put_content(plain)
    with bucket.object("dl/plain").get_reader(num_workers=workers).read_all() as buf:
        assert buf.tobytes() == plain
    parts = [rand_bytes(f"dl-part-{workers}-{n}", 300 * 1024 + n) for n in (1, 2, 3)]
    _upload(bucket.object("dl/mpu"), list(enumerate(parts, start=1)))
    with bucket.object("dl/mpu").get_reader(num_workers=workers).read_all() as buf:
        assert buf.tobytes() == b"".join(parts)
