#!/usr/bin/env bash
# The whole moss test suite in one command, runnable on a fresh Debian machine with Rust and Python 3.
#
#   scripts/test.sh          everything: tool setup, cargo build + cargo test, pytest against a live cluster
#   scripts/test.sh rust     only the Rust build and tests
#   scripts/test.sh python   only the Python (SDK) tests; builds the moss binary unless $MOSS_BIN is set
#
# Environment:
#   MOSS_BIN        moss binary the Python tests start (default: $CARGO_TARGET_DIR/debug/moss or target/debug/moss)
#   MOSS_ENDPOINT   run the Python tests against this already running cluster instead of starting one
#   PYTEST_ARGS     extra arguments for pytest (e.g. "-k batch -x")
#   MOSS_VENV       virtualenv to create/use instead of .venv
#   MOSS_RUST_TEST_TIMEOUT / MOSS_PYTHON_TEST_TIMEOUT   seconds the test runs may take (900 / 600)
#
# Exits non-zero if any step or any test fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode="${1:-all}"
case "$mode" in
all | rust | python) ;;
-h | --help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: scripts/test.sh [all|rust|python]" >&2
    exit 2
    ;;
esac

section() { printf '\n======== %s ========\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# Tools the tests run as independent readers of what moss writes: the lz4 CLI and Info-ZIP
# unzip (Debian packages), plus python3 and tar, which the machine already has.
ensure_test_tools() {
    local missing=()
    command -v lz4 >/dev/null 2>&1 || missing+=(lz4)
    command -v unzip >/dev/null 2>&1 || missing+=(unzip)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing ${missing[*]} via apt-get"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    for tool in lz4 unzip python3 tar; do
        command -v "$tool" >/dev/null || {
            echo "error: $tool is required by the tests" >&2
            exit 1
        }
        echo "$tool: $(command -v "$tool")"
    done
}

# The cloud emulators remote-bucket tests talk to (moto for S3 and GCS's XML API, Azurite for
# Azure), installed at pinned versions and started on free loopback ports for this run only;
# their environment (scripts/emulators.sh) is exported to the tests and the clusters they start.
start_emulators() {
    section "setup: cloud emulators"
    "$root/scripts/setup-emulators.sh"
    emu_dir="$(mktemp -d)"
    trap '"$root/scripts/emulators.sh" stop "$emu_dir" || true; rm -rf "$emu_dir"' EXIT
    local s3_port azure_port
    s3_port="$(free_port)"
    azure_port="$(free_port)"
    MOSS_EMU_S3_PORT="$s3_port" MOSS_EMU_AZURE_PORT="$azure_port" \
        "$root/scripts/emulators.sh" start "$emu_dir" >/dev/null
    # shellcheck disable=SC1091
    source "$emu_dir/env.sh"
    echo "emulators: S3 $MOSS_S3_ENDPOINT, Azure $MOSS_AZURE_BLOB_URL"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wall-clock limits for running the tests (not for compiling them).
rust_test_limit="${MOSS_RUST_TEST_TIMEOUT:-900}"
python_test_limit="${MOSS_PYTHON_TEST_TIMEOUT:-600}"

started_at=$SECONDS
elapsed() { echo "$((SECONDS - started_at))s"; }

if [ "$mode" != all ]; then
    section "setup: system tools"
    ensure_test_tools
fi

run_rust() {
    start_emulators
    section "rust: cargo build --workspace"
    cargo build --workspace
    section "rust: cargo test --workspace (build)"
    cargo test --workspace --no-run
    section "rust: cargo test --workspace (run, limit ${rust_test_limit}s)"
    # A hung test must fail the run, not eat the CI budget; timeout kills its whole process group.
    timeout --kill-after=30 "$rust_test_limit" cargo test --workspace --no-fail-fast
    echo "rust: done at $(elapsed)"
}

run_python() {
    section "python: virtualenv"
    "$root/scripts/setup-python.sh"
    start_emulators

    if [ -n "${MOSS_ENDPOINT:-}" ]; then
        echo "using the running cluster at MOSS_ENDPOINT=$MOSS_ENDPOINT"
    elif [ -n "${MOSS_BIN:-}" ]; then
        echo "using MOSS_BIN=$MOSS_BIN"
    else
        section "python: build the moss binary"
        # only the binary: the SDK suite should not depend on, say, the benchmark compiling
        cargo build -p moss --bin moss
        MOSS_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/moss"
        export MOSS_BIN
    fi
    if [ -z "${MOSS_ENDPOINT:-}" ] && [ ! -x "$MOSS_BIN" ]; then
        echo "error: moss binary not found at $MOSS_BIN" >&2
        exit 1
    fi

    section "python: pytest python/tests (SDK against a live 3-target cluster, limit ${python_test_limit}s)"
    # shellcheck disable=SC2086 # PYTEST_ARGS is split on purpose
    timeout --kill-after=30 "$python_test_limit" \
        "${MOSS_VENV:-$root/.venv}/bin/python" -m pytest "$root/python/tests" ${PYTEST_ARGS:-}
    echo "python: done at $(elapsed)"
}

case "$mode" in
rust) run_rust ;;
python) run_python ;;
all)
    # Each suite runs as its own process (so `set -e` holds inside it), and a Rust failure
    # does not hide what the Python suite would say.
    failed=()
    bash "$root/scripts/test.sh" rust || failed+=(rust)
    bash "$root/scripts/test.sh" python || failed+=(python)
    if [ "${#failed[@]}" -gt 0 ]; then
        section "FAILED: ${failed[*]} (after $(elapsed))"
        exit 1
    fi
    ;;
esac

section "passed: $mode (in $(elapsed))"
