"""Shared helpers for the moss SDK tests: the local cluster process, deterministic data,
archive/multipart parsing, and raw-HTTP calls for what the SDK cannot express."""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import re
import signal
import subprocess
import tarfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]

ENDPOINT_LINE = re.compile(r"^endpoint:\s+(https?://\S+)")
AUTHN_LINE = re.compile(r"^authn:\s+(https?://\S+)")

# The JSON error body AIStore (and so moss) sends with every 4xx/5xx.
ERROR_FIELDS = ("message", "method", "url_path", "remote_addr", "caller", "node", "status")

PLACEHOLDER_DIR = "__404__"


# --------------------------------------------------------------------------------------------
# the cluster under test


def moss_binary() -> Path:
    """The moss binary to start: $MOSS_BIN, else <cargo target dir>/debug/moss."""
    explicit = os.environ.get("MOSS_BIN")
    if explicit:
        return Path(explicit)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    return target_dir / "debug" / "moss"


@dataclass
class LocalCluster:
    """`moss local` running as a child process, its output captured for diagnostics."""

    process: subprocess.Popen
    log_path: Path
    stdout_lines: List[str] = field(default_factory=list)
    endpoint: Optional[str] = None
    authn_url: Optional[str] = None
    _endpoint_seen: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(
        cls,
        binary: Path,
        data_dir: Path,
        targets: int = 3,
        extra_args: Sequence[str] = (),
        env_extra: Optional[Dict[str, str]] = None,
    ) -> "LocalCluster":
        log_path = data_dir.parent / f"{data_dir.name}.stderr.log"
        log_file = open(log_path, "wb")  # pylint: disable=consider-using-with
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        env.update(env_extra or {})
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [
                str(binary),
                "local",
                "--targets",
                str(targets),
                "--listen",
                "127.0.0.1:0",
                "--data",
                str(data_dir),
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=env,
        )
        log_file.close()
        cluster = cls(process=process, log_path=log_path)
        threading.Thread(target=cluster._drain_stdout, name="moss-stdout", daemon=True).start()
        return cluster

    def _drain_stdout(self) -> None:
        # Keeps reading until EOF so the child never blocks on a full pipe.
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            authn = AUTHN_LINE.match(line)
            if authn:
                self.authn_url = authn.group(1).rstrip("/")
            match = ENDPOINT_LINE.match(line)
            if match and self.endpoint is None:
                self.endpoint = match.group(1).rstrip("/")
                self._endpoint_seen.set()
        self._endpoint_seen.set()  # EOF: the process is gone, stop waiting

    def wait_for_endpoint(self, timeout: float) -> Optional[str]:
        """Blocks until the `endpoint:` line appears, the process exits, or the timeout passes."""
        self._endpoint_seen.wait(timeout)
        return self.endpoint

    def stderr_tail(self, max_bytes: int = 8000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError as err:
            return f"<cannot read {self.log_path}: {err}>"
        return data[-max_bytes:].decode("utf-8", "replace")

    def diagnostics(self) -> str:
        return (
            f"exit code: {self.process.poll()}\n"
            f"--- stdout ---\n" + "\n".join(self.stdout_lines[-40:]) + "\n"
            f"--- stderr (tail of {self.log_path}) ---\n{self.stderr_tail()}"
        )

    def stop(self, grace: float = 15.0) -> Tuple[Optional[int], bool]:
        """SIGINT, wait up to `grace` seconds, then SIGKILL. Returns (exit code, exited in time)."""
        if self.process.poll() is not None:
            return self.process.returncode, True
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=grace), True
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10), False


# --------------------------------------------------------------------------------------------
# deterministic data


def rand_bytes(seed: object, size: int) -> bytes:
    """`size` pseudo-random bytes, always the same for the same seed."""
    return random.Random(str(seed)).randbytes(size)


def put_objects(bucket, contents: Dict[str, bytes], workers: int = 8) -> None:
    """PUTs every object through the SDK, a few at a time."""

    def put(item: Tuple[str, bytes]) -> None:
        name, data = item
        bucket.object(name).get_writer().put_content(data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(put, contents.items()):
            pass


# --------------------------------------------------------------------------------------------
# archives


def entry_name(bucket: str, obj: str, archpath: str = "", only_obj_name: bool = False) -> str:
    """The archive member name GetBatch gives an entry (`B/O`, `B/O/A`, `O`, `O/A`)."""
    name = obj if only_obj_name else f"{bucket}/{obj}"
    if archpath:
        name = f"{name}/{archpath.lstrip('/')}"
    return name


def placeholder_name(bucket: str, obj: str, archpath: str = "", only_obj_name: bool = False) -> str:
    """The member name of a missing entry (`__404__/...`)."""
    return f"{PLACEHOLDER_DIR}/{entry_name(bucket, obj, archpath, only_obj_name)}"


@dataclass
class Member:
    """One member of an archive as a reader sees it."""

    name: str
    data: bytes
    is_file: bool = True
    mode: Optional[int] = None


def read_tar(data: bytes | io.RawIOBase, mode: str = "r|*") -> List[Member]:
    """Every member of a TAR (or gzipped TAR) stream, in stream order."""
    fileobj = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    members = []
    with tarfile.open(fileobj=fileobj, mode=mode) as tar:
        for info in tar:
            content = b""
            if info.isfile():
                extracted = tar.extractfile(info)
                assert extracted is not None
                content = extracted.read()
            members.append(Member(info.name, content, info.isfile(), info.mode))
    return members


def read_zip(data: bytes) -> List[Member]:
    """Every member of a ZIP archive, in central-directory order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [
            Member(info.filename, archive.read(info), not info.is_dir())
            for info in archive.infolist()
        ]


def read_archive(data: bytes, fmt: str) -> List[Member]:
    """Members of a GetBatch archive in the given output format."""
    if fmt == ".zip":
        return read_zip(data)
    return read_tar(data)


def make_tar(members: Sequence[Tuple[str, bytes]], compression: str = "") -> bytes:
    """A TAR shard (PAX format, so long and UTF-8 names work) of the given members."""
    buf = io.BytesIO()
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_zip(members: Sequence[Tuple[str, bytes]], compression: int) -> bytes:
    """A ZIP shard of the given members with the given compression method."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6)), data,
                             compress_type=compression)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# multipart (buffered GetBatch responses)


def boundary_of(content_type: str) -> bytes:
    match = re.search(r'boundary="?([^";,\s]+)"?', content_type)
    assert match, f"no boundary in Content-Type {content_type!r}"
    return match.group(1).encode()


def split_multipart(body: bytes, content_type: str) -> List[Tuple[Dict[str, str], bytes]]:
    """Parts of a multipart/mixed body as (headers, payload), payload without the CRLF before the
    next delimiter. Strict: checks the delimiter layout instead of guessing."""
    assert content_type.startswith("multipart/mixed"), content_type
    delimiter = b"--" + boundary_of(content_type)
    assert body.startswith(delimiter + b"\r\n"), f"body does not start with the delimiter: {body[:80]!r}"
    closing = b"\r\n" + delimiter + b"--"
    end = body.rfind(closing)
    assert end > 0, "no closing delimiter"
    assert body[end + len(closing):] in (b"", b"\r\n"), "bytes after the closing delimiter"
    inner = body[len(delimiter) + 2 : end]
    parts = []
    for raw_part in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, sep, payload = raw_part.partition(b"\r\n\r\n")
        assert sep, f"part without a header/body separator: {raw_part[:80]!r}"
        headers = {}
        for line in head.split(b"\r\n"):
            if line:
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
        parts.append((headers, payload))
    return parts


def parse_buffered(body: bytes, content_type: str, fmt: str = ".tar") -> Tuple[dict, List[Member]]:
    """(MossResp JSON, archive members) of a buffered (strm=false) GetBatch response."""
    parts = split_multipart(body, content_type)
    assert len(parts) == 2, f"expected 2 parts (metadata, archive), got {len(parts)}"
    (meta_headers, meta), (arch_headers, archive) = parts
    assert 'name="metadata"' in meta_headers.get("content-disposition", ""), meta_headers
    assert 'name="archive"' in arch_headers.get("content-disposition", ""), arch_headers
    return json.loads(meta), read_archive(archive, fmt)


# --------------------------------------------------------------------------------------------
# raw HTTP


def moss_url(endpoint: str, bucket: Optional[str] = None) -> str:
    return f"{endpoint}/v1/ml/moss" + (f"/{bucket}" if bucket else "")


def assert_error_body(resp, status: int) -> dict:
    """The response is `status` with AIS's JSON error body; returns the parsed body."""
    text = resp.text if hasattr(resp, "text") else resp.body.decode("utf-8", "replace")
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {text[:500]}"
    content_type = resp.headers.get("Content-Type", "")
    assert content_type.startswith("application/json"), f"error Content-Type {content_type!r}"
    body = json.loads(text)
    for key in ERROR_FIELDS:
        assert key in body, f"error body lacks {key!r}: {body}"
    assert body["status"] == status, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


@dataclass
class RawResponse:
    """Just enough of a response for the raw-path helper below."""

    status_code: int
    headers: Dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _CaseInsensitive(dict):
    def get(self, key, default=None):  # type: ignore[override]
        for k, v in self.items():
            if k.lower() == key.lower():
                return v
        return default


def raw_request(method: str, url: str, body: bytes = b"", max_redirects: int = 5) -> RawResponse:
    """Sends exactly this URL path (no client-side normalization of `..` or of percent-escapes),
    following 307/308 with the same method and body like the SDK does."""
    for _ in range(max_redirects + 1):
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            headers = {"Content-Length": str(len(body))} if body or method in ("PUT", "POST") else {}
            conn.request(method, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            resp_headers = _CaseInsensitive(resp.getheaders())
        finally:
            conn.close()
        if resp.status in (307, 308):
            location = resp_headers.get("Location")
            assert location, "redirect without Location"
            url = location if "://" in location else f"{parts.scheme}://{parts.netloc}{location}"
            continue
        return RawResponse(resp.status, resp_headers, data, url)
    raise AssertionError(f"more than {max_redirects} redirects for {method} {url}")


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------------------------
# S3 (boto3) side of the remote-bucket tests


def s3_put_objects(s3_client, bucket: str, contents: Dict[str, bytes], workers: int = 8) -> None:
    """PUTs every object straight into S3 with boto3 (out of band: the cluster does not see it)."""

    def put(item: Tuple[str, bytes]) -> None:
        name, data = item
        s3_client.put_object(Bucket=bucket, Key=name, Body=data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(put, contents.items()):
            pass


def s3_listing(s3_client, bucket: str, prefix: str = "") -> List[Tuple[str, int]]:
    """(key, size) of every object S3 itself lists, in S3's order."""
    found = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend((o["Key"], o["Size"]) for o in page.get("Contents", []))
    return found


def s3_get(s3_client, bucket: str, key: str) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
