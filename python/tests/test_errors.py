"""GetBatch over raw HTTP (`requests`): request validation, status codes and JSON error bodies,
methods, the action envelope, and the proxy's redirect — what curl users and other clients see."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest

from helpers import assert_error_body, moss_url, parse_buffered, put_objects, rand_bytes, read_tar


@pytest.fixture(scope="module")
def small_bucket(module_buckets):
    """A few objects to point requests at."""
    bucket = module_buckets("err")
    contents = {f"o{i}.bin": rand_bytes(("err", i), 100 + i) for i in range(5)}
    put_objects(bucket, contents)
    return bucket, contents


def get_batch(http, endpoint, body, bucket=None, method="GET", params=None, **kwargs):
    """Sends a GetBatch request; `body` is JSON-encoded unless it is already bytes/str."""
    query = {"provider": "ais"} if bucket else {}
    query.update(params or {})
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return http.request(
        method,
        moss_url(endpoint, bucket),
        params=query,
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=30,
        **kwargs,
    )


def tar_entries(resp):
    assert resp.status_code == 200, resp.text[:500]
    return [(m.name, m.data) for m in read_tar(resp.content)]


# ------------------------------------------------------------------------------------------
# malformed requests: 400 with a JSON body that says why


@pytest.mark.parametrize(
    "body, why",
    [
        (b"{not json", ("json", "invalid", "parse", "line 1")),
        (b"", "empty"),
        ({}, "empty"),
        ({"in": []}, "empty"),
        ({"in": None}, "empty"),
    ],
    ids=["malformed-json", "no-body", "no-in", "empty-in", "null-in"],
)
def test_bad_body_is_400(endpoint, http, small_bucket, body, why):
    """A body that is not a MossReq with entries is refused with 400 and a reason."""
    bucket, _ = small_bucket
    resp = get_batch(http, endpoint, body, bucket=bucket.name)
    err = assert_error_body(resp, 400)
    reasons = why if isinstance(why, tuple) else (why,)
    assert any(r in err["message"].lower() for r in reasons), err


def test_unknown_mime_is_400(endpoint, http, small_bucket):
    """An unknown output format is refused with 400 naming the format."""
    bucket, _ = small_bucket
    resp = get_batch(http, endpoint, {"in": [{"objname": "o1.bin"}], "mime": ".rar"}, bucket=bucket.name)
    err = assert_error_body(resp, 400)
    assert "mime" in err["message"].lower() and ".rar" in err["message"], err


def test_missing_bucket_spec_is_400(endpoint, http):
    """No bucket in the path and none in the entry: 400 'missing bucket specification'."""
    resp = get_batch(http, endpoint, {"in": [{"objname": "lonely.bin"}]})
    err = assert_error_body(resp, 400)
    assert "missing bucket" in err["message"].lower(), err
    assert "lonely.bin" in err["message"], err


# Malformed ranges: the reference answers 400, the spec also allows 416 ("not satisfiable").
RANGE_STATUSES = (400, 416)


@pytest.mark.parametrize(
    "entry, why, statuses",
    [
        ({"objname": ""}, "invalid object name", (400,)),
        ({"objname": "../up"}, "invalid object name", (400,)),
        ({"objname": "a/../../b"}, "invalid object name", (400,)),
        ({"objname": "dir/"}, "invalid object name", (400,)),
        ({"objname": "o1.bin", "archpath": "../x"}, "invalid archpath", (400,)),
        ({"objname": "o1.bin", "start": -1, "length": 5}, "range", RANGE_STATUSES),
        ({"objname": "o1.bin", "start": 5, "length": 0}, "range", RANGE_STATUSES),
        ({"objname": "o1.bin", "length": -2}, "range", RANGE_STATUSES),
        ({"objname": "o1.bin", "opaque": "***not base64***"}, "opaque", (400,)),
    ],
    ids=["empty-name", "dotdot", "dotdot-deep", "trailing-slash", "bad-archpath", "negative-start",
         "start-without-length", "length-minus-2", "bad-opaque"],
)
def test_invalid_entry_is_4xx(endpoint, http, small_bucket, entry, why, statuses):
    """An invalid entry is refused (400; 416 for a malformed range) before any data is read,
    and the message says why."""
    bucket, _ = small_bucket
    resp = get_batch(http, endpoint, {"in": [{"objname": "o0.bin"}, entry]}, bucket=bucket.name)
    assert resp.status_code in statuses, (resp.status_code, resp.text[:300])
    err = assert_error_body(resp, resp.status_code)
    assert why in err["message"].lower(), err


@pytest.mark.parametrize("coloc", ["7", "3", "-1", "abc"])
def test_bad_coloc_is_400(endpoint, http, small_bucket, coloc):
    """`?coloc=` accepts only 0, 1, 2; anything else is 400."""
    bucket, _ = small_bucket
    resp = get_batch(http, endpoint, {"in": [{"objname": "o1.bin"}]}, bucket=bucket.name,
                     params={"coloc": coloc})
    err = assert_error_body(resp, 400)
    assert "coloc" in err["message"].lower(), err


@pytest.mark.parametrize("coloc", ["0", "1", "2"])
def test_valid_coloc_is_accepted(endpoint, http, small_bucket, coloc):
    """coloc 0, 1 and 2 all serve the batch."""
    bucket, contents = small_bucket
    resp = get_batch(http, endpoint, {"in": [{"objname": "o1.bin"}], "strm": True}, bucket=bucket.name,
                     params={"coloc": coloc})
    assert tar_entries(resp) == [(f"{bucket.name}/o1.bin", contents["o1.bin"])]


def test_unknown_path_bucket_is_404(endpoint, http):
    """A path bucket that does not exist is 404 with AIS's wording."""
    resp = get_batch(http, endpoint, {"in": [{"objname": "x"}]}, bucket="no-such-bucket-404")
    err = assert_error_body(resp, 404)
    assert err["message"] == 'bucket "ais://no-such-bucket-404" does not exist', err


def test_unknown_entry_bucket_is_404(endpoint, http, small_bucket):
    """An entry naming a bucket that does not exist fails the request with 404 (even with coer)."""
    bucket, _ = small_bucket
    body = {"in": [{"objname": "o1.bin", "bucket": bucket.name},
                   {"objname": "x", "bucket": "no-such-entry-bucket"}], "coer": True}
    err = assert_error_body(get_batch(http, endpoint, body), 404)
    assert 'ais://no-such-entry-bucket' in err["message"] and "does not exist" in err["message"], err


@pytest.mark.parametrize("strm", [True, False], ids=["streaming", "multipart"])
def test_strict_missing_object_is_404_without_archive_bytes(endpoint, http, small_bucket, strm):
    """Strict mode with a missing object: 404 JSON error, and no archive bytes at all."""
    bucket, _ = small_bucket
    body = {"in": [{"objname": "o1.bin"}, {"objname": "absent.bin"}], "coer": False, "strm": strm}
    resp = get_batch(http, endpoint, body, bucket=bucket.name)
    err = assert_error_body(resp, 404)
    assert f"ais://{bucket.name}/absent.bin" in err["message"] and "does not exist" in err["message"], err


@pytest.mark.parametrize("strm", [True, False], ids=["streaming", "multipart"])
def test_unsatisfiable_range_is_416(endpoint, http, small_bucket, strm):
    """A range past the end of the object is 416 before any archive byte."""
    bucket, _ = small_bucket
    body = {"in": [{"objname": "o1.bin", "start": 5000, "length": 10}], "strm": strm}
    err = assert_error_body(get_batch(http, endpoint, body, bucket=bucket.name), 416)
    assert "range" in err["message"].lower(), err


def test_wrong_method_is_405(endpoint, http, small_bucket):
    """PUT and DELETE on /v1/ml/moss are 405."""
    bucket, _ = small_bucket
    for method in ("PUT", "DELETE"):
        resp = get_batch(http, endpoint, {"in": [{"objname": "o1.bin"}]}, bucket=bucket.name, method=method)
        assert resp.status_code == 405, (method, resp.status_code, resp.text[:300])
        assert resp.headers["Allow"] == "GET, POST", resp.headers


@pytest.mark.parametrize("path", ["/v1/ml/other", "/v1/ml/moss/a/b"])
def test_bad_ml_path_is_400(endpoint, http, path):
    """Unknown /v1/ml paths and extra path segments are 400."""
    resp = http.get(endpoint + path, data=json.dumps({"in": [{"objname": "x"}]}), timeout=30)
    assert_error_body(resp, 400)


GARBAGE_BODIES = [
    b"\xff\xfe\x00garbage",
    b"[]",
    b"null",
    b"42",
    b'"in"',
    b'{"in": "o1.bin"}',
    b'{"in": [42]}',
    b'{"in": [{"objname": 7}]}',
    b'{"in": [{"objname": "o1.bin", "start": "x"}]}',
    b'{"in": [{"objname": "o1.bin", "length": 1e99}]}',
    b'{"in": [{"objname": "o1.bin"}], "mime": 5}',
    b'{"in": [{"objname": "o1.bin"}], "coer": "yes"}',
    b'{"in": [{"objname": "o1.bin"}]',
    b'{"action": "getbatch"}',
    b'{"action": "getbatch", "value": {"in": []}}',
    b'{"action": "other", "value": {"in": [{"objname": "o1.bin"}]}}',
    b"[" * 10000,
]


@pytest.mark.parametrize("body", GARBAGE_BODIES, ids=range(len(GARBAGE_BODIES)))
def test_garbage_is_never_5xx(endpoint, http, small_bucket, body):
    """A deterministic client error is a 4xx with a JSON body, never a 5xx the SDK would retry."""
    bucket, _ = small_bucket
    resp = get_batch(http, endpoint, body, bucket=bucket.name)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert_error_body(resp, resp.status_code)


# ------------------------------------------------------------------------------------------
# methods, envelope, redirect


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("envelope", [False, True], ids=["bare", "envelope"])
def test_methods_and_envelope(endpoint, http, small_bucket, method, envelope):
    """GET and POST both work, with the bare MossReq and with {"action":"getbatch","value":...}."""
    bucket, contents = small_bucket
    req = {"in": [{"objname": "o2.bin"}, {"objname": "o0.bin"}], "strm": True}
    body = {"action": "getbatch", "value": req} if envelope else req
    resp = get_batch(http, endpoint, body, bucket=bucket.name, method=method)
    assert resp.headers["Content-Type"] == "application/x-tar"
    assert tar_entries(resp) == [
        (f"{bucket.name}/o2.bin", contents["o2.bin"]),
        (f"{bucket.name}/o0.bin", contents["o0.bin"]),
    ]


def test_buffered_response_layout(endpoint, http, small_bucket):
    """strm:false answers multipart/mixed: a `metadata` part (MossResp) then an `archive` part."""
    bucket, contents = small_bucket
    body = {"in": [{"objname": "o3.bin", "opaque": base64.b64encode(b"tag").decode()},
                   {"objname": "nope"}], "coer": True, "strm": False}
    resp = get_batch(http, endpoint, body, bucket=bucket.name)
    assert resp.status_code == 200, resp.text[:300]
    meta, members = parse_buffered(resp.content, resp.headers["Content-Type"])
    assert meta["uuid"]
    assert len(meta["out"]) == 2
    ok, missing = meta["out"]
    assert ok == {"objname": "o3.bin", "bucket": bucket.name, "provider": "ais",
                  "opaque": base64.b64encode(b"tag").decode(), "size": len(contents["o3.bin"])}
    assert missing["size"] == 0 and "does not exist" in missing["err_msg"]
    assert [m.name for m in members] == [f"{bucket.name}/o3.bin", f"__404__/{bucket.name}/nope"]


def test_urlsafe_opaque_is_accepted(endpoint, http, small_bucket):
    """opaque in the URL-safe base64 alphabet ('-', '_') is accepted and echoes the same bytes."""
    bucket, _ = small_bucket
    raw = b"\xfb\xff\xbf\xfe"
    body = {"in": [{"objname": "o1.bin", "opaque": base64.urlsafe_b64encode(raw).decode()}], "strm": False}
    resp = get_batch(http, endpoint, body, bucket=bucket.name)
    assert resp.status_code == 200, resp.text[:300]
    meta, _ = parse_buffered(resp.content, resp.headers["Content-Type"])
    echoed = meta["out"][0]["opaque"]
    assert base64.b64decode(echoed.replace("-", "+").replace("_", "/")) == raw


def test_provider_aliases_in_entries(endpoint, http, small_bucket):
    """Entry provider '' means ais, and an explicit 'ais' works the same."""
    bucket, contents = small_bucket
    body = {"in": [{"objname": "o1.bin", "bucket": bucket.name},
                   {"objname": "o2.bin", "bucket": bucket.name, "provider": "ais"}], "strm": True}
    assert tar_entries(get_batch(http, endpoint, body)) == [
        (f"{bucket.name}/o1.bin", contents["o1.bin"]),
        (f"{bucket.name}/o2.bin", contents["o2.bin"]),
    ]


def test_uname_entries_named_like_bucket_entries(endpoint, http, small_bucket):
    """An entry given by `uname` (ais/@#/<bucket>/) is read and named `<bucket>/<obj>`."""
    bucket, contents = small_bucket
    body = {"in": [{"objname": "o4.bin", "uname": f"ais/@#/{bucket.name}/"}], "strm": True}
    assert tar_entries(get_batch(http, endpoint, body)) == [(f"{bucket.name}/o4.bin", contents["o4.bin"])]


def test_proxy_redirects_with_307_to_a_target(endpoint, http, small_bucket):
    """The proxy answers 307 with a Location on a target's port; re-sending the body there works."""
    bucket, contents = small_bucket
    body = {"in": [{"objname": "o1.bin"}], "strm": True}
    resp = get_batch(http, endpoint, body, bucket=bucket.name, allow_redirects=False)
    assert resp.status_code == 307, resp.text[:300]
    location = resp.headers["Location"]
    proxy, target = urlsplit(endpoint), urlsplit(location)
    assert target.hostname == proxy.hostname
    assert target.port != proxy.port
    assert target.path.startswith("/v1/ml/moss")
    followed = http.get(location, data=json.dumps(body), timeout=30, allow_redirects=False)
    assert tar_entries(followed) == [(f"{bucket.name}/o1.bin", contents["o1.bin"])]


def test_validation_happens_before_redirect(endpoint, http, small_bucket):
    """A bad request gets its 4xx from the proxy itself, not a 307."""
    bucket, _ = small_bucket
    resp = get_batch(http, endpoint, {"in": []}, bucket=bucket.name, allow_redirects=False)
    assert_error_body(resp, 400)
    resp = get_batch(http, endpoint, {"in": [{"objname": "x"}]}, bucket="nope-404", allow_redirects=False)
    assert_error_body(resp, 404)


def test_mime_aliases(endpoint, http, small_bucket):
    """Output formats are accepted with or without the leading dot and as MIME types."""
    bucket, contents = small_bucket
    expected = [(f"{bucket.name}/o1.bin", contents["o1.bin"])]
    for mime in ("tar", ".tar", "application/x-tar", "TAR"):
        resp = get_batch(http, endpoint, {"in": [{"objname": "o1.bin"}], "mime": mime, "strm": True},
                         bucket=bucket.name)
        assert tar_entries(resp) == expected, mime
    for mime in ("tgz", "application/gzip", ".TGZ"):
        resp = get_batch(http, endpoint, {"in": [{"objname": "o1.bin"}], "mime": mime, "strm": True},
                         bucket=bucket.name)
        assert resp.status_code == 200, (mime, resp.text[:300])
        assert resp.content[:2] == b"\x1f\x8b", mime
        assert tar_entries(resp) == expected, mime
