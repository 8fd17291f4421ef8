"""Fixtures: one `moss local` cluster (1 proxy + 3 targets) for the whole session, an SDK client
that fails fast instead of retrying for 90 s, and fresh buckets per test.

Set MOSS_ENDPOINT=http://host:port to run against a cluster that is already running."""

from __future__ import annotations

import logging
import os
import uuid

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.retry_config import RetryConfig
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed
from urllib3.util.retry import Retry

from helpers import LocalCluster, moss_binary

STARTUP_TIMEOUT_S = 60
SHUTDOWN_GRACE_S = 15
TARGETS = 3


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory):
    """Base URL of the cluster under test (also exported as AIS_ENDPOINT)."""
    existing = os.environ.get("MOSS_ENDPOINT")
    if existing:
        os.environ["AIS_ENDPOINT"] = existing.rstrip("/")
        yield existing.rstrip("/")
        return

    binary = moss_binary()
    if not binary.is_file():
        pytest.fail(f"moss binary not found at {binary}: run `cargo build` or set MOSS_BIN")
    data_dir = tmp_path_factory.mktemp("moss") / "data"
    # Where `promote` may read files (moss reads it at start; AIStore's is /var/lib/ais/promote).
    os.environ.setdefault("MOSS_PROMOTE_ROOT", str(tmp_path_factory.mktemp("promote-root")))
    cluster = LocalCluster.start(binary, data_dir, targets=TARGETS)
    found = cluster.wait_for_endpoint(STARTUP_TIMEOUT_S)
    if found is None:
        exited = cluster.process.poll() is not None
        cluster.stop(grace=5)
        reason = "exited before printing" if exited else f"did not print within {STARTUP_TIMEOUT_S}s"
        pytest.fail(
            f"`{binary} local` {reason} its `endpoint:` line\n" + cluster.diagnostics(),
            pytrace=False,
        )
    os.environ["AIS_ENDPOINT"] = found
    yield found

    died_early = cluster.process.poll() is not None
    code, in_time = cluster.stop(grace=SHUTDOWN_GRACE_S)
    problems = []
    if died_early:
        problems.append(f"moss exited during the tests (code {code})")
    elif not in_time:
        problems.append(f"moss did not exit within {SHUTDOWN_GRACE_S}s of SIGINT; killed")
    elif code != 0:
        problems.append(f"moss exited with code {code} after SIGINT")
    if problems:
        pytest.fail("; ".join(problems) + "\n" + cluster.diagnostics(), pytrace=False)


def fast_fail_retry_config() -> RetryConfig:
    """No 90-second status retries: 5xx surfaces at once as AISError with the server's message.
    429 (overload) is retried briefly, and a dropped keep-alive connection once."""
    return RetryConfig(
        http_retry=Retry(
            total=3,
            backoff_factor=0.2,
            status_forcelist=[429],
            connect=0,
            read=0,
            raise_on_status=False,
        ),
        network_retry=Retrying(
            stop=stop_after_attempt(2),
            wait=wait_fixed(0.2),
            retry=retry_if_exception_type(requests.exceptions.ConnectionError),
            before_sleep=lambda state: logging.getLogger(__name__).warning(
                "retrying after %s", state.outcome.exception()
            ),
            reraise=True,
        ),
    )


@pytest.fixture(scope="session")
def client(endpoint) -> Client:
    """The SDK client as a user would build it, with fail-fast retries."""
    return Client(endpoint, timeout=(5, 30), retry_config=fast_fail_retry_config())


def unique_bucket_name(prefix: str = "pyt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class BucketFactory:
    """Creates uniquely named ais buckets and destroys them all afterwards."""

    def __init__(self, client: Client):
        self._client = client
        self._created = []

    def __call__(self, prefix: str = "pyt"):
        bucket = self._client.bucket(unique_bucket_name(prefix))
        bucket.create(exist_ok=False)
        self._created.append(bucket)
        return bucket

    def destroy_all(self) -> None:
        for bucket in self._created:
            bucket.delete(missing_ok=True)


@pytest.fixture
def make_bucket(client):
    """Factory for extra fresh buckets in one test (destroyed afterwards)."""
    factory = BucketFactory(client)
    yield factory
    factory.destroy_all()


@pytest.fixture
def bucket(make_bucket):
    """A fresh, empty ais bucket for one test."""
    return make_bucket()


@pytest.fixture(scope="module")
def module_buckets(client):
    """Factory for buckets shared by the tests of one module (read-only datasets)."""
    factory = BucketFactory(client)
    yield factory
    factory.destroy_all()


@pytest.fixture(scope="session")
def promote_root(endpoint) -> str:
    """The cluster's promote root (MOSS_PROMOTE_ROOT, which the nodes read at start)."""
    root = os.environ.get("MOSS_PROMOTE_ROOT")
    if not root:
        pytest.fail("MOSS_PROMOTE_ROOT is not set: start the cluster under test with it",
                    pytrace=False)
    return root


@pytest.fixture
def http():
    """A plain `requests` session for what the SDK cannot express."""
    with requests.Session() as session:
        yield session


# --------------------------------------------------------------------------------------------
# remote (S3) buckets: moto, started by scripts/test.sh (scripts/emulators.sh)

S3_ENV_HINT = (
    "MOSS_S3_ENDPOINT is not set: the remote-bucket tests need the S3 emulator. Run them through "
    "`scripts/test.sh python`, or by hand: scripts/setup-emulators.sh && "
    "scripts/emulators.sh start DIR && source DIR/env.sh (then start pytest from that shell, "
    "so the moss cluster it launches inherits the AWS_* variables)"
)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """The S3 emulator's URL (moto) from scripts/emulators.sh's env.sh."""
    url = os.environ.get("MOSS_S3_ENDPOINT")
    if not url:
        pytest.fail(S3_ENV_HINT, pytrace=False)
    return url.rstrip("/")


@pytest.fixture(scope="session")
def s3(s3_endpoint):
    """A boto3 S3 client aimed explicitly at the emulator (AWS_ENDPOINT_URL is not exported)."""
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel

    s3_client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}),
    )
    try:
        s3_client.list_buckets()
    except Exception as err:  # pylint: disable=broad-except
        pytest.fail(f"S3 emulator at {s3_endpoint} does not answer: {err}\n{S3_ENV_HINT}",
                    pytrace=False)
    return s3_client


def _empty_and_delete_s3_bucket(s3_client, name: str) -> None:
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture
def s3_bucket(s3):
    """A fresh, empty S3 bucket (in the emulator) for one test; emptied and deleted afterwards."""
    name = unique_bucket_name("moss-pyt")
    s3.create_bucket(Bucket=name)
    yield name
    _empty_and_delete_s3_bucket(s3, name)


@pytest.fixture
def remote_bucket(client, s3_bucket):
    """The SDK Bucket (provider aws) for this test's fresh S3 bucket. Afterwards the cluster
    forgets it (bucket evict: cached data and bucket metadata) before the S3 bucket goes."""
    bucket = client.bucket(s3_bucket, provider="aws")
    yield bucket
    try:
        bucket.evict(keep_md=False)
    except Exception as err:  # pylint: disable=broad-except
        logging.getLogger(__name__).warning("evicting %s: %s", s3_bucket, err)
