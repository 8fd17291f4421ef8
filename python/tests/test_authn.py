"""AuthN with the real SDK: `moss local --auth` runs an AuthN service beside the cluster; the SDK's
`AuthNClient` logs in and manages users and roles, and `Client(..., token=...)` is checked on every
call — per bucket, inside GetBatch, and for expired, revoked, tampered and `alg: none` tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.authn import AuthNClient
from aistore.sdk.authn.access_attr import AccessAttr
from aistore.sdk.authn.errors import ErrUserInvalidCredentials, ErrUserNotFound
from aistore.sdk.errors import AISError

from conftest import fast_fail_retry_config
from helpers import LocalCluster, moss_binary

ADMIN_PASS = "moss-admin-" + uuid.uuid4().hex[:8]
AUTHN_URL: list = []


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A `moss local --auth` cluster: (endpoint, authn url, data dir)."""
    data_dir = tmp_path_factory.mktemp("moss-auth") / "data"
    cluster = LocalCluster.start(
        moss_binary(),
        data_dir,
        targets=2,
        extra_args=["--auth"],
        env_extra={"AIS_AUTHN_SU_PASS": ADMIN_PASS},
    )
    endpoint = cluster.wait_for_endpoint(60)
    deadline = time.time() + 10
    while cluster.authn_url is None and time.time() < deadline:
        time.sleep(0.05)
    if endpoint is None or cluster.authn_url is None:
        cluster.stop(grace=5)
        pytest.fail("`moss local --auth` did not print its endpoints\n" + cluster.diagnostics())
    AUTHN_URL[:] = [cluster.authn_url]
    yield endpoint, cluster.authn_url, data_dir
    code, in_time = cluster.stop(grace=15)
    assert in_time and code == 0, cluster.diagnostics()


@pytest.fixture(scope="module")
def admin(secured):
    endpoint, authn_url, _ = secured
    authn = AuthNClient(authn_url)
    token = authn.login("admin", ADMIN_PASS)
    return authn, Client(endpoint, token=token, retry_config=fast_fail_retry_config())


def client_for(endpoint: str, token: str | None) -> Client:
    return Client(endpoint, token=token, retry_config=fast_fail_retry_config())


def make_reader(admin, bucket_name: str) -> str:
    """A user whose only role reads `bucket_name`; returns their token."""
    authn, _ = admin
    authn_url = AUTHN_URL[0]
    suffix = uuid.uuid4().hex[:8]
    role = f"ro-{suffix}"
    authn.role_manager().create(
        name=role,
        desc="read one bucket",
        cluster_alias="local",
        perms=[AccessAttr.ACCESS_RO],
        bucket_name=bucket_name,
    )
    user = f"reader-{suffix}"
    authn.user_manager().create(username=user, roles=[role], password="pw-" + suffix)
    return AuthNClient(authn_url).login(user, "pw-" + suffix)


def status_of(call) -> int:
    with pytest.raises(AISError) as err:
        call()
    return err.value.status_code


def forge(secret: bytes, claims: dict, alg: str = "HS256") -> str:
    """A JWT made by hand (to test expiry and forged algorithms)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_no_token_is_401_and_admin_token_works(secured, admin):
    endpoint, _, _ = secured
    _, client = admin
    assert status_of(lambda: client_for(endpoint, None).cluster().list_buckets()) == 401
    bucket = client.bucket("auth-" + uuid.uuid4().hex[:8]).create()
    bucket.object("a.txt").get_writer().put_content(b"admin wrote this")
    assert bucket.object("a.txt").get_reader().read_all() == b"admin wrote this"
    batch = client.batch(bucket=bucket)
    batch.add("a.txt")
    assert [content for _, content in batch.get()] == [b"admin wrote this"]


def test_wrong_password_and_unknown_user_are_invalid_credentials(secured):
    _, authn_url, _ = secured
    with pytest.raises(ErrUserInvalidCredentials):
        AuthNClient(authn_url).login("admin", "not-the-password")
    with pytest.raises(ErrUserInvalidCredentials):
        AuthNClient(authn_url).login("nobody-" + uuid.uuid4().hex[:6], "whatever")


def test_repeated_failed_logins_are_rate_limited(secured, admin):
    _, authn_url, _ = secured
    authn, _ = admin
    user = "victim-" + uuid.uuid4().hex[:6]
    authn.role_manager().create(
        name="r-" + user, desc="", cluster_alias="local", perms=[AccessAttr.ACCESS_RO]
    )
    authn.user_manager().create(username=user, roles=["r-" + user], password="right")
    codes = []
    for _ in range(6):
        r = requests.post(f"{authn_url}/v1/users/{user}", json={"password": "wrong"}, timeout=10)
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5
    assert codes[5] == 429, codes
    # Locked: even the right password waits.
    r = requests.post(f"{authn_url}/v1/users/{user}", json={"password": "right"}, timeout=10)
    assert r.status_code == 429 and "too many failed logins" in r.text


def test_bucket_scoped_token(secured, admin):
    endpoint, _, _ = secured
    _, client = admin
    a = client.bucket("auth-a-" + uuid.uuid4().hex[:6]).create()
    b = client.bucket("auth-b-" + uuid.uuid4().hex[:6]).create()
    a.object("x").get_writer().put_content(b"in A")
    b.object("y").get_writer().put_content(b"in B")
    reader = client_for(endpoint, make_reader(admin, a.name))

    assert reader.bucket(a.name).object("x").get_reader().read_all() == b"in A"
    assert [e.name for e in reader.bucket(a.name).list_all_objects()] == ["x"]
    assert status_of(lambda: reader.bucket(b.name).object("y").get_reader().read_all()) == 403
    assert status_of(lambda: reader.bucket(b.name).list_all_objects()) == 403
    assert status_of(lambda: reader.bucket(a.name).object("z").get_writer().put_content(b"no")) == 403
    assert status_of(lambda: reader.bucket(a.name).delete()) == 403

    # GetBatch: all entries from A pass; one entry from B refuses the whole batch.
    ok = reader.batch(bucket=reader.bucket(a.name))
    ok.add("x")
    assert [content for _, content in ok.get()] == [b"in A"]
    mixed = reader.batch(bucket=reader.bucket(a.name))
    mixed.add("x")
    mixed.add(reader.bucket(b.name).object("y"))
    with pytest.raises(AISError) as err:
        list(mixed.get())
    assert err.value.status_code == 403
    assert b.name in str(err.value)


def test_expired_tampered_and_alg_none_tokens_are_401(secured, admin):
    endpoint, _, data_dir = secured
    secret = (data_dir / "authn" / "authn.secret").read_bytes().strip()
    now = int(time.time())
    admin_claims = {"sub": "admin", "admin": True, "iat": now}
    expired = forge(secret, {**admin_claims, "exp": now - 5})
    assert status_of(lambda: client_for(endpoint, expired).cluster().list_buckets()) == 401
    none = forge(secret, {**admin_claims, "exp": now + 600}, alg="none")
    assert status_of(lambda: client_for(endpoint, none).cluster().list_buckets()) == 401
    other_key = forge(b"x" * 64, {**admin_claims, "exp": now + 600})
    assert status_of(lambda: client_for(endpoint, other_key).cluster().list_buckets()) == 401
    # A genuine reader token with its payload switched to admin: the signature breaks.
    _, client = admin
    bucket = client.bucket("auth-t-" + uuid.uuid4().hex[:6]).create()
    head, _, sig = make_reader(admin, bucket.name).split(".")
    body = base64.urlsafe_b64encode(json.dumps({**admin_claims, "exp": now + 600}).encode())
    tampered = f"{head}.{body.rstrip(b'=').decode()}.{sig}"
    r = requests.get(f"{endpoint}/v1/buckets", headers={"Authorization": f"Bearer {tampered}"}, timeout=10)
    assert r.status_code == 401 and "signature" in r.text
    # And a token forged with the real secret is accepted: the tests above fail for the right reason.
    good = forge(secret, {**admin_claims, "exp": now + 600})
    client_for(endpoint, good).cluster().list_buckets()


def test_logout_revokes_the_token_on_the_cluster(secured, admin):
    endpoint, authn_url, _ = secured
    _, client = admin
    bucket = client.bucket("auth-r-" + uuid.uuid4().hex[:6]).create()
    token = make_reader(admin, bucket.name)
    reader = client_for(endpoint, token)
    reader.bucket(bucket.name).list_all_objects()
    authn = AuthNClient(authn_url, token=token)
    authn.logout()
    deadline = time.time() + 10
    while time.time() < deadline:
        r = requests.get(
            f"{endpoint}/v1/buckets/{bucket.name}",
            headers={"Authorization": f"Bearer {token}"},
            json={"action": "list", "value": {}},
            timeout=10,
        )
        if r.status_code == 401:
            break
        time.sleep(0.1)
    assert r.status_code == 401 and "revoked" in r.text


def test_redirects_are_signed_and_targets_refuse_unsigned_or_altered(secured, admin):
    endpoint, authn_url, _ = secured
    _, client = admin
    bucket = client.bucket("auth-s-" + uuid.uuid4().hex[:6]).create()
    bucket.object("o").get_writer().put_content(b"secret bytes")
    token = AuthNClient(authn_url).login("admin", ADMIN_PASS)
    auth = {"Authorization": f"Bearer {token}"}
    r = requests.get(f"{endpoint}/v1/objects/{bucket.name}/o", headers=auth, allow_redirects=False, timeout=10)
    assert r.status_code == 307
    location = r.headers["Location"]
    assert requests.get(location, timeout=10).content == b"secret bytes"
    # Straight to the target without the proxy's signature, or with the URL changed.
    target_base = location.split("/v1/")[0]
    direct = requests.get(f"{target_base}/v1/objects/{bucket.name}/o", timeout=10)
    assert direct.status_code == 403 and "direct target access denied" in direct.text
    altered = requests.delete(location, timeout=10)
    assert altered.status_code == 403 and "invalid proxy signature" in altered.text
    # GetBatch: the DT must get the very body the proxy checked.
    body = {"in": [{"objname": "o"}], "strm": True}
    r = requests.get(f"{endpoint}/v1/ml/moss/{bucket.name}", headers=auth, json=body, allow_redirects=False, timeout=10)
    assert r.status_code == 307
    swapped = {"in": [{"objname": "o"}, {"objname": "o"}], "strm": True}
    r2 = requests.get(r.headers["Location"], json=swapped, timeout=10)
    assert r2.status_code == 403 and "invalid proxy signature" in r2.text
    r3 = requests.get(r.headers["Location"], json=body, timeout=10)
    assert r3.status_code == 200 and b"secret bytes" in r3.content


def test_admin_only_calls_and_user_management(secured, admin):
    endpoint, authn_url, _ = secured
    authn, client = admin
    bucket = client.bucket("auth-m-" + uuid.uuid4().hex[:6]).create()
    token = make_reader(admin, bucket.name)
    reader = client_for(endpoint, token)
    assert status_of(lambda: reader.cluster().list_buckets()) == 403
    r = requests.put(
        f"{endpoint}/v1/cluster/set-config?get_batch.max_soft_errs=7",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 403 and "ADMIN" in r.text
    users = authn.user_manager().list()
    assert "admin" in users
    admin_token = AuthNClient(authn_url).login("admin", ADMIN_PASS)
    raw = requests.get(f"{authn_url}/v1/users", headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    assert raw.status_code == 200 and "argon2" not in raw.text and "pass" not in raw.text
    with pytest.raises(ErrUserNotFound):
        authn.user_manager().get("ghost-" + uuid.uuid4().hex[:6])
    # A reader cannot use AuthN's admin API.
    reader_authn = AuthNClient(authn_url, token=token)
    with pytest.raises(Exception) as err:
        reader_authn.user_manager().list()
    assert "not an administrator" in str(err.value)
