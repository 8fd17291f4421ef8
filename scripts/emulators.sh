#!/usr/bin/env bash
# Starts and stops the cloud-storage emulators the remote-bucket tests use, on loopback only:
#   moto_server (S3)              127.0.0.1:${MOSS_EMU_S3_PORT:-5000}
#   azurite-blob (Azure Blob)     127.0.0.1:${MOSS_EMU_AZURE_PORT:-10000}   (in memory, no telemetry)
# GCS has no emulator here that serves the requests moss's client (object_store) sends: it speaks
# GCS's XML API, which gcp-storage-emulator does not implement (it routes on undecoded paths, has no
# HEAD, no XML listing, no ETag) and fake-gcs-server's XML support is unreleased. The GCS tests use
# moto's XML API instead (GCS's XML API is S3's shape), in buckets with alphanumeric names
# ($MOSS_EMU_GCS_BUCKETS), through STORAGE_EMULATOR_HOST.
# Install them first with scripts/setup-emulators.sh.
#
# Usage:
#   scripts/emulators.sh start DIR            start both, wait until each answers, create the
#                                             buckets named in $MOSS_EMU_BUCKETS (default: moss-test)
#                                             in each and $MOSS_EMU_GCS_BUCKETS (default: mossgcs)
#                                             for GCS, write DIR/env.sh (export K=V lines)
#   scripts/emulators.sh stop DIR             stop the emulators whose pids are in DIR
#   scripts/emulators.sh mkbucket DIR KIND NAME   create bucket/container NAME (KIND: s3|azure|all)
#
# DIR holds <name>.pid, <name>.log and env.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOSS_VENV:-$root/.venv}"
tools="${MOSS_TOOLS:-$root/.tools}"
host=127.0.0.1
s3_port="${MOSS_EMU_S3_PORT:-5000}"
azure_port="${MOSS_EMU_AZURE_PORT:-10000}"
buckets="${MOSS_EMU_BUCKETS:-moss-test}"
gcs_buckets="${MOSS_EMU_GCS_BUCKETS:-mossgcs}"
wait_secs="${MOSS_EMU_WAIT_SECS:-60}"

# Azurite's fixed, publicly documented development account.
azure_account=devstoreaccount1
azure_key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

log() { printf 'emulators: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '/^# Usage:/,/^# DIR/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

py() { "$venv/bin/python" "$@"; }

# Small HTTP helpers (stdlib only), so the script needs no curl and no cloud SDK.
helper='
import base64, hashlib, hmac, json, os, sys, time, urllib.error, urllib.request
from email.utils import formatdate

def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

def wait(url, secs, pid):
    deadline = time.time() + float(secs)
    while True:
        try:
            request("GET", url)  # any HTTP answer, even 4xx, means the server is up
            return
        except OSError:
            try:
                os.kill(int(pid), 0)
            except OSError:
                sys.exit("process %s serving %s exited" % (pid, url))
            if time.time() > deadline:
                sys.exit("no answer from %s after %ss" % (url, secs))
            time.sleep(0.2)

def mk_s3(endpoint, name):
    return request("PUT", "%s/%s" % (endpoint, name), b"")

def mk_azure(endpoint, account, key, name):
    # Create Container, authorised with SharedKey (path-style URL: /<account>/<container>).
    # urllib adds a Content-Type to a PUT with a body, so send (and sign) one explicitly.
    date, version, ctype = formatdate(usegmt=True), "2021-08-06", "application/xml"
    to_sign = "\n".join(["PUT", "", "", "", "", ctype] + [""] * 6) + "\n" + \
        "x-ms-date:%s\nx-ms-version:%s\n" % (date, version) + \
        "/%s/%s/%s\nrestype:container" % (account, account, name)
    sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest())
    headers = {"x-ms-date": date, "x-ms-version": version, "Content-Type": ctype,
               "Authorization": "SharedKey %s:%s" % (account, sig.decode())}
    return request("PUT", "%s/%s/%s?restype=container" % (endpoint, account, name), b"", headers)

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "wait":
    wait(*args)
else:
    status, body = {"s3": mk_s3, "azure": mk_azure}[cmd](*args)
    if status not in (200, 201, 409):  # 409: already there
        sys.exit("creating %s bucket %s: HTTP %s %s" % (cmd, args[-1], status, body[:300]))
'

s3_url="http://$host:$s3_port"
azure_url="http://$host:$azure_port"

mkbucket() {
    local kind="$1" name="$2"
    case "$kind" in
        s3) py -c "$helper" s3 "$s3_url" "$name" ;;
        azure) py -c "$helper" azure "$azure_url" "$azure_account" "$azure_key" "$name" ;;
        all) mkbucket s3 "$name" && mkbucket azure "$name" ;;
        *) die "unknown bucket kind '$kind' (s3|azure|all)" ;;
    esac
}

port_is_free() {
    ! py -c 'import socket, sys
s = socket.socket()
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)' "$host" "$1"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# launch NAME PORT CMD...: runs CMD in the background with its log and pid in $dir.
launch() {
    local name="$1" port="$2"
    shift 2
    if pid_alive "$dir/$name.pid"; then
        log "error: $name already running (pid $(cat "$dir/$name.pid")); run: $0 stop $dir"
        return 1
    fi
    if ! port_is_free "$port"; then
        log "error: port $host:$port (for $name) is already in use; set MOSS_EMU_*_PORT"
        return 1
    fi
    (cd "$dir" && exec nohup "$@" >"$dir/$name.log" 2>&1 </dev/null) &
    echo $! >"$dir/$name.pid"
}

await() {
    local name="$1" url="$2"
    if ! py -c "$helper" wait "$url" "$wait_secs" "$(cat "$dir/$name.pid")" ||
        ! pid_alive "$dir/$name.pid"; then
        log "$name did not come up; last lines of $dir/$name.log:"
        tail -n 20 "$dir/$name.log" >&2 || true
        stop_all
        exit 1
    fi
    log "$name ready at $url (pid $(cat "$dir/$name.pid"))"
}

stop_one() {
    local name="$1" pidfile="$dir/$1.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop_all() {
    stop_one moto
    stop_one azurite
}

start() {
    local moto="$venv/bin/moto_server"
    local azurite="$tools/azurite/node_modules/.bin/azurite-blob"
    for bin in "$moto" "$azurite"; do
        [ -x "$bin" ] || die "$bin not found; run scripts/setup-emulators.sh"
    done
    trap 'log "start failed; stopping what was started"; stop_all' ERR
    launch moto "$s3_port" "$moto" -H "$host" -p "$s3_port"
    launch azurite "$azure_port" "$azurite" --blobHost "$host" --blobPort "$azure_port" \
        --inMemoryPersistence --skipApiVersionCheck --loose \
        --disableProductStyleUrl --disableTelemetry

    await moto "$s3_url/"
    await azurite "$azure_url/"

    for b in $buckets; do
        mkbucket all "$b"
    done
    for b in $gcs_buckets; do
        mkbucket s3 "$b"
    done

    cat >"$dir/env.sh" <<EOF
# Written by scripts/emulators.sh start $dir
export MOSS_EMU_BUCKETS='$buckets'
# S3 (moto): any key pair is accepted; path-style requests.
export MOSS_S3_ENDPOINT=$s3_url
export AWS_ENDPOINT=$s3_url
export AWS_ALLOW_HTTP=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
# Azure Blob (Azurite): well-known development account; account name is the first path segment.
export MOSS_AZURE_BLOB_URL=$azure_url
export AZURITE_BLOB_STORAGE_URL=$azure_url
export AZURE_STORAGE_USE_EMULATOR=true
export AZURE_STORAGE_ACCOUNT_NAME=$azure_account
export AZURE_STORAGE_ACCOUNT_KEY=$azure_key
# GCS: moto's XML API (see the note at the top); moss's GCS client sends any bearer token.
export MOSS_EMU_GCS_BUCKETS='$gcs_buckets'
export STORAGE_EMULATOR_HOST=$s3_url
EOF
    trap - ERR
    log "buckets: $buckets; environment in $dir/env.sh"
    cat "$dir/env.sh"
}

[ $# -ge 2 ] || usage
cmd="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
case "$cmd" in
    start) start ;;
    stop) stop_all ;;
    mkbucket)
        [ $# -eq 4 ] || usage
        mkbucket "$3" "$4"
        ;;
    *) usage ;;
esac
