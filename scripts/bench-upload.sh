#!/usr/bin/env bash
# Upload throughput: one file as a single PUT vs as a multipart upload, same cluster, same run;
# and the peak memory of the nodes while a big file goes up in parts.
#
#   scripts/bench-upload.sh [SIZE_MIB] [BIG_MIB]     defaults: 1024 and 4096 (BIG 0 skips it)
#
# Starts a release `moss local` (1 proxy + 3 targets) in a temporary directory, creates a file of
# random bytes, uploads it with `moss put` three times each way (--part-size above the file: one
# PUT; --part-size 64: 64 MiB parts, 4 in flight), reads every upload back and compares it, prints MiB/s per round and the median; then uploads BIG_MIB as 64 MiB parts and
# prints the process's peak RSS (VmHWM) before and after. Needs ~3 x BIG_MIB of free disk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

size_mib=${1:-1024}
big_mib=${2:-4096}
cargo build --release -p moss --bin moss >&2
moss=target/release/moss
work=$(mktemp -d "${TMPDIR:-/tmp}/moss-upload.XXXXXX")
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$moss" local --data "$work/data" --listen 127.0.0.1:0 >"$work/local.out" 2>"$work/local.err" &
pid=$!
for _ in $(seq 100); do
    endpoint=$(sed -n 's/^endpoint: \([^ ]*\).*/\1/p' "$work/local.out")
    [[ -n $endpoint ]] && break
    sleep 0.2
done
[[ -n ${endpoint:-} ]] || { echo "moss local did not start" >&2; cat "$work/local.err" >&2; exit 1; }
export AIS_ENDPOINT=$endpoint
"$moss" bucket create up >/dev/null

peak_rss() { awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$pid/status"; }
upload() { # FILE NAME PART_MIB -> seconds
    local start end
    start=$(date +%s.%N)
    "$moss" put "$1" "up/$2" --part-size "$3" >/dev/null 2>&1
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
verify() { # FILE NAME: the object reads back byte for byte
    curl -sfL "$AIS_ENDPOINT/v1/objects/up/$2" | cmp -s - "$1" ||
        { echo "object up/$2 differs from $1" >&2; exit 1; }
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

head -c $((size_mib << 20)) /dev/urandom >"$work/file"
echo "upload of ${size_mib} MiB, 1 proxy + 3 targets on this machine (release build)"
single_part=$((size_mib + 1))
for way in single multipart; do
    part=$single_part
    [[ $way == multipart ]] && part=64
    rates=()
    for round in 1 2 3; do
        secs=$(upload "$work/file" "$way-$round" "$part")
        verify "$work/file" "$way-$round"
        rates+=("$(echo "$size_mib / $secs" | bc -l)")
        "$moss" rm up "$way-$round" >/dev/null 2>&1 || true
    done
    printf '%-10s %s MiB/s per round: %s; median %.0f MiB/s\n' "$way" \
        "$([[ $way == single ]] && echo "(one PUT)" || echo "(64 MiB parts, 4 in flight)")" \
        "$(printf '%.0f ' "${rates[@]}")" "$(printf '%s\n' "${rates[@]}" | median)"
done
rm -f "$work/file"

if ((big_mib > 0)); then
    head -c $((big_mib << 20)) /dev/urandom >"$work/big"
    echo "peak RSS of the cluster process before the ${big_mib} MiB upload: $(peak_rss)"
    secs=$(upload "$work/big" big 64)
    verify "$work/big" big
    printf 'big upload: %.0f MiB/s (64 MiB parts)\n' "$(echo "$big_mib / $secs" | bc -l)"
    echo "peak RSS of the cluster process after: $(peak_rss)"
fi
