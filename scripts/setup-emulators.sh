#!/usr/bin/env bash
# Installs the cloud-storage emulators the remote-bucket tests run against, every version pinned:
#   - moto[server] (S3; its XML API also stands in for GCS, see scripts/emulators.sh) into the project venv (.venv, or $MOSS_VENV),
#     which scripts/setup-python.sh creates (it is run first and is a no-op when the venv is ready);
#   - Azurite (Azure Blob) with npm into .tools/azurite (binary: .tools/azurite/node_modules/.bin/azurite-blob).
#
# Idempotent: pins that are already installed are reused without touching the network.
# Usage: scripts/setup-emulators.sh            (then: scripts/emulators.sh start DIR)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOSS_VENV:-$root/.venv}"
tools="${MOSS_TOOLS:-$root/.tools}"
azurite_dir="$tools/azurite"
stamp="$venv/.moss-emulators.sha256"

# Azurite 3.35.0 is the newest release whose package allows node 20 (3.36.0 wants node >= 21,
# 3.37.0 node >= 22).
azurite_version="3.35.0"

# The emulators' Python packages and all the dependencies they add to python/requirements-test.txt,
# frozen for reproducible CI. python/requirements-test.txt is applied as a constraint, so installing
# these never moves a pin the test suite relies on (boto3, requests, urllib3, ...).
python_pins="
moto[server]==5.2.5

antlr4-python3-runtime==4.13.2
attrs==26.1.0
aws-xray-sdk==2.15.0
blinker==1.9.0
cffi==2.1.1
cfn-lint==1.58.0
click==8.5.1
cryptography==50.0.2
docker==7.2.0
flask==3.1.3
flask-cors==6.0.5
google-crc32c==1.9.0
graphql-core==3.3.2
itsdangerous==2.2.0
jinja2==3.1.6
joserfc==1.8.0
jsonpatch==1.48
jsonpath-ng==1.16.0
jsonpointer==3.12
jsonschema==4.26.0
jsonschema-path==0.5.0
jsonschema-specifications==2025.9.1
lazy-object-proxy==1.13.0
markupsafe==3.0.4
mpmath==1.3.0
networkx==3.6.1
openapi-schema-validator==0.9.0
openapi-spec-validator==0.9.0
pathable==0.6.0
py-partiql-parser==0.6.3
pycparser==3.12
pydantic-settings==2.16.3
pyparsing==3.3.3
python-dotenv==1.2.4
referencing==0.37.0
regex==2026.11.19
responses==0.26.3
rfc3339-validator==0.1.4
rpds-py==2026.9.1
sympy==1.14.0
werkzeug==3.1.9
wrapt==2.5.2
xmltodict==1.0.4
"

log() { printf 'setup-emulators: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# --- Python emulators (moto) ---------------------------------------------------------------------

"$root/scripts/setup-python.sh"

wanted="$(printf '%s' "$python_pins" | cat - "$root/python/requirements-test.txt" | sha256sum | cut -d' ' -f1)"

python_is_complete() {
    [ -f "$stamp" ] &&
        [ "$(cat "$stamp")" = "$wanted" ] &&
        [ -x "$venv/bin/moto_server" ] &&
        "$venv/bin/python" -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1
}

if python_is_complete; then
    log "reusing moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)') in $venv"
else
    log "installing pinned moto[server] into $venv"
    pins_file="$(mktemp)"
    trap 'rm -f "$pins_file"' EXIT
    printf '%s\n' "$python_pins" >"$pins_file"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -r "$pins_file" -c "$root/python/requirements-test.txt"
    "$venv/bin/python" -c 'import moto.server, flask, flask_cors'
    echo "$wanted" >"$stamp"
fi

# --- Azurite -----------------------------------------------------------------------------------------

azurite_installed_version() {
    local pkg="$azurite_dir/node_modules/azurite/package.json"
    [ -f "$pkg" ] && [ -x "$azurite_dir/node_modules/.bin/azurite-blob" ] &&
        node -p "require(process.argv[1]).version" "$pkg" 2>/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node/npm not found; installing nodejs and npm via apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi

if [ "$(azurite_installed_version || true)" = "$azurite_version" ]; then
    log "reusing azurite $azurite_version in ${azurite_dir#"$root"/}"
else
    log "installing azurite@$azurite_version into ${azurite_dir#"$root"/} (node $(node --version))"
    mkdir -p "$azurite_dir"
    npm install --prefix "$azurite_dir" --no-audit --no-fund --save-exact --loglevel=error \
        "azurite@$azurite_version"
    [ "$(azurite_installed_version)" = "$azurite_version" ]
fi

log "ready: moto_server ($venv/bin), azurite-blob (${azurite_dir#"$root"/}/node_modules/.bin)"
