#!/usr/bin/env bash
# Creates the Python virtualenv the moss test suite runs in (.venv at the repo root, or $MOSS_VENV),
# with the pinned packages of python/requirements-test.txt (the aistore SDK 2.0.0, pytest, boto3).
#
# Idempotent: a venv that already holds exactly these pins is reused without touching the network.
# Usage: scripts/setup-python.sh            (then: .venv/bin/python -m pytest python/tests)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOSS_VENV:-$root/.venv}"
requirements="$root/python/requirements-test.txt"
python="${PYTHON:-python3}"
stamp="$venv/.moss-requirements.sha256"

log() { printf 'setup-python: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

if ! command -v "$python" >/dev/null 2>&1; then
    log "error: '$python' not found (set PYTHON=/path/to/python3.11)"
    exit 1
fi

wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"

venv_is_complete() {
    [ -x "$venv/bin/python" ] &&
        [ -f "$stamp" ] &&
        [ "$(cat "$stamp")" = "$wanted" ] &&
        "$venv/bin/python" -c 'import aistore, pytest, pytest_timeout, boto3, requests' >/dev/null 2>&1
}

if venv_is_complete; then
    log "reusing $venv ($("$venv/bin/python" -c 'import aistore; print("aistore", aistore.__version__)' 2>/dev/null || echo 'aistore ?'))"
    exit 0
fi

if [ -e "$venv" ]; then
    log "rebuilding incomplete or outdated venv $venv"
    rm -rf "$venv"
fi

log "creating $venv with $("$python" --version 2>&1)"
if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian splits venv/ensurepip into python3-venv; install it once and retry.
    rm -rf "$venv"
    log "python venv module unavailable; installing python3-venv via apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    "$python" -m venv "$venv"
fi

log "installing pinned packages from ${requirements#"$root"/}"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements"
"$venv/bin/python" -c 'import aistore, pytest, pytest_timeout, boto3, requests'
echo "$wanted" >"$stamp"
log "ready: $venv"
