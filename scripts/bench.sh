#!/usr/bin/env bash
# The moss benchmark in one command (perf-anchors §5: GetBatch vs individual GETs vs nginx vs
# the local bound, shard extraction, latency, DT memory; checks the SPEC §5 targets).
#
#   scripts/bench.sh                   full run: about a minute of cells plus ~15-20 s of setup
#   scripts/bench.sh --quick           smoke run on tiny data (seconds)
#   scripts/bench.sh --jobs            the job cells instead (copy, archive, delete of 100,000 objects)
#   scripts/bench.sh --remote          the remote-bucket cells instead: GetBatch over s3:// buckets
#                                      held by a local s3s-fs, cold and warm, vs a direct S3 client
#                                      (installs s3s-fs 0.14.1 into .tools/s3s-fs once; ~3-4 min)
#   scripts/bench.sh --sizes 10k       only some object sizes; any other moss-bench flag works too
#   scripts/bench.sh --help            moss-bench's own flags
#
# What it does:
#   1. builds moss and moss-bench in release mode (honours $CARGO_TARGET_DIR);
#   2. installs nginx from Debian packages if it is missing (apt-get; sudo when not root) —
#      if that fails the run goes on with --no-nginx and says so;
#   3. runs moss-bench, which starts a moss cluster (proxy + 3 targets as separate processes)
#      and nginx on CPU0, pins itself to CPU1, uploads the data set (~2 GB), runs the cells,
#      stops everything and removes the data.
# Results: bench-out/results.txt (the table) and bench-out/results.json (every number, the
# environment and which targets were met); server logs in bench-out/run/logs/.
# The machine should be otherwise idle: the table reports how much CPU other processes took.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

for arg in "$@"; do
    if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
        sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
        echo
    fi
done

target_dir="${CARGO_TARGET_DIR:-$root/target}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

have_nginx() {
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
}

install_nginx() {
    command -v apt-get >/dev/null 2>&1 || return 1
    echo "bench.sh: installing nginx (apt-get)" >&2
    # Keep the package's init script from starting a system nginx on port 80.
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy" && added=1
    fi
    local ok=0
    as_root apt-get update -qq >&2 || true
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >&2 ||
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2; then
        ok=1
    fi
    if [ "$added" -eq 1 ]; then
        as_root rm -f "$policy"
    fi
    [ "$ok" -eq 1 ]
}

# s3s-fs for --remote: the newest release that builds with the toolchain here (0.15 and later
# need rustc 1.96). Not part of CI: only this script installs it.
S3S_FS_VERSION="${S3S_FS_VERSION:-0.14.1}"
s3s_root="$root/.tools/s3s-fs"

install_s3s_fs() {
    local bin="$s3s_root/bin/s3s-fs"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "s3s-fs $S3S_FS_VERSION"; then
        return 0
    fi
    echo "bench.sh: installing s3s-fs $S3S_FS_VERSION into $s3s_root (cargo install, a few minutes)" >&2
    cargo install s3s-fs --locked --version "$S3S_FS_VERSION" --features binary --root "$s3s_root" >&2
}

extra=()
want_nginx=1
remote=0
for arg in "$@"; do
    [ "$arg" = "--no-nginx" ] && want_nginx=0
    [ "$arg" = "--remote" ] && remote=1 && want_nginx=0
done
if [ "$remote" -eq 1 ]; then
    install_s3s_fs
    extra+=(--s3s-fs "$s3s_root/bin/s3s-fs")
    # The previous run deleted ~150,000 files when it ended; on ext4 without a journal, creating
    # files near them stays slow for up to 5 minutes (see docs/benchmark.md, "Remote buckets"),
    # which would halve the cold epoch. BENCH_REMOTE_NO_WAIT=1 skips the wait.
    last="$root/bench-out/remote.json"
    if [ -z "${BENCH_REMOTE_NO_WAIT:-}" ] && [ -f "$last" ]; then
        age=$(( $(date +%s) - $(stat -c %Y "$last") ))
        if [ "$age" -lt 300 ]; then
            echo "bench.sh: the last --remote run ended ${age} s ago: waiting $((300 - age)) s for the file system to settle" >&2
            sleep $((300 - age))
        fi
    fi
fi
if [ "$want_nginx" -eq 1 ] && ! have_nginx; then
    if ! install_nginx || ! have_nginx; then
        echo "bench.sh: could not install nginx: running without the nginx cells (--no-nginx)" >&2
        extra+=(--no-nginx)
    fi
fi
if ! command -v taskset >/dev/null 2>&1; then
    echo "bench.sh: taskset (util-linux) not found: servers and client will run unpinned" >&2
fi

echo "bench.sh: building moss and moss-bench (release)" >&2
cargo build --release -p moss -p moss-bench

exec "$target_dir/release/moss-bench" \
    --moss-bin "$target_dir/release/moss" \
    --out "$root/bench-out" \
    "${extra[@]+"${extra[@]}"}" \
    "$@"
