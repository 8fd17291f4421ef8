"""TLS through the real SDK: `moss local --tls` (its own cluster, next to the suite's plain-HTTP
one) with a self-signed certificate in <data>/tls/cert.pem. A client given the certificate as
its CA, or told to skip verification, works; a client with neither fails with an SSL error."""

from __future__ import annotations

import pytest
import requests
from aistore.sdk import Client

from conftest import fast_fail_retry_config, unique_bucket_name
from helpers import LocalCluster, moss_binary, put_objects, rand_bytes

STARTUP_TIMEOUT_S = 60

# `requests` lets these variables override a session's `verify` (which is where the SDK puts
# ca_cert and skip_verify), so with either set the SDK's own TLS settings are silently ignored.
REQUESTS_CA_OVERRIDES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """(endpoint, CA file) of a 2-target `moss local --tls` cluster; the tests of this module
    run without the variables that would override the SDK's TLS settings."""
    with pytest.MonkeyPatch.context() as env:
        for name in REQUESTS_CA_OVERRIDES:
            env.delenv(name, raising=False)
        yield from _start_tls_cluster(tmp_path_factory)


def _start_tls_cluster(tmp_path_factory):
    binary = moss_binary()
    if not binary.is_file():
        pytest.fail(f"moss binary not found at {binary}: run `cargo build` or set MOSS_BIN")
    data_dir = tmp_path_factory.mktemp("moss-tls") / "data"
    cluster = LocalCluster.start(binary, data_dir, targets=2, extra_args=["--tls"])
    endpoint = cluster.wait_for_endpoint(STARTUP_TIMEOUT_S)
    if endpoint is None:
        cluster.stop(grace=5)
        pytest.fail("`moss local --tls` printed no endpoint\n" + cluster.diagnostics(),
                    pytrace=False)
    ca_file = data_dir / "tls" / "cert.pem"
    yield endpoint, str(ca_file.resolve())
    code, in_time = cluster.stop(grace=15)
    assert in_time and code == 0, f"moss local --tls exit {code}\n" + cluster.diagnostics()


def sdk(endpoint: str, **tls) -> Client:
    return Client(endpoint, timeout=(5, 30), retry_config=fast_fail_retry_config(), **tls)


def test_local_tls_prints_https_and_the_certificate(tls_cluster):
    endpoint, ca_file = tls_cluster
    assert endpoint.startswith("https://127.0.0.1:"), endpoint
    with open(ca_file, encoding="ascii") as pem:
        assert pem.read().startswith("-----BEGIN CERTIFICATE-----")


def test_client_with_the_ca_puts_gets_lists_and_batches(tls_cluster):
    endpoint, ca_file = tls_cluster
    client = sdk(endpoint, ca_cert=ca_file)
    bucket = client.bucket(unique_bucket_name("tls"))
    bucket.create(exist_ok=False)
    try:
        contents = {f"obj-{i:02d}.bin": rand_bytes(("tls", i), 100 + 731 * i) for i in range(20)}
        put_objects(bucket, contents)
        assert bucket.object("obj-07.bin").get_reader().read_all() == contents["obj-07.bin"]
        assert sorted(e.name for e in bucket.list_all_objects()) == sorted(contents)

        # GetBatch: the designated target gathers the other target's items over TLS as well.
        order = sorted(contents, reverse=True)
        results = list(client.batch(order, bucket=bucket).get())
        assert [out.obj_name for out, _ in results] == order
        assert [data for _, data in results] == [contents[name] for name in order]
    finally:
        bucket.delete(missing_ok=True)


def test_client_that_skips_verification_works(tls_cluster):
    endpoint, _ = tls_cluster
    client = sdk(endpoint, skip_verify=True)
    bucket = client.bucket(unique_bucket_name("tls-skip"))
    bucket.create(exist_ok=False)
    try:
        bucket.object("a").get_writer().put_content(b"over tls, unverified")
        assert bucket.object("a").get_reader().read_all() == b"over tls, unverified"
    finally:
        bucket.delete(missing_ok=True)


def test_client_without_ca_or_skip_fails_with_an_ssl_error(tls_cluster, monkeypatch):
    endpoint, _ = tls_cluster
    monkeypatch.delenv("AIS_CLIENT_CA", raising=False)
    monkeypatch.delenv("AIS_SKIP_VERIFY_CRT", raising=False)
    monkeypatch.delenv("AIS_SKIP_VERIFY", raising=False)
    client = sdk(endpoint)
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        client.cluster().get_info()


def test_plain_http_to_the_tls_port_is_answered_400(tls_cluster):
    endpoint, _ = tls_cluster
    resp = requests.get(endpoint.replace("https://", "http://") + "/v1/daemon?what=smap",
                        timeout=10)
    assert resp.status_code == 400
    assert "client sent an HTTP request to an HTTPS server" in resp.json()["message"]
