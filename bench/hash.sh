#!/usr/bin/env bash
# sha256 throughput on one file of BENCH_TREE_MB MiB (default 1 GiB, from the page cache):
# skiff's hasher (skiff_image::Digest::of_reader, the content store's digest) against
# coreutils' sha256sum. See bench/README.md.
#
#   cargo build --release -p skiff-snapshot --example layer_bench
#   bash bench/hash.sh                       # BENCH_TREE_MB=64 for a quick check
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

bench_init hash
bench_require sha256sum
lb="$(bench_layer_bench)"

file="$BENCH_TMP/blob"
bench_log "generating a ${BENCH_TREE_MB} MiB file"
bench_make_random_file "$file" "$BENCH_TREE_MB"
cat "$file" >/dev/null

bench_race \
    "skiff" "" "$(bench_q "$lb" hash "$file") >/dev/null" \
    "sha256sum" "" "sha256sum $(bench_q "$file") >/dev/null"
bench_compare "sha256 of ${BENCH_TREE_MB} MiB" "${BENCH_TIME[skiff]}" sha256sum "${BENCH_TIME[sha256sum]}"
bench_note "$(awk -v mib="$BENCH_TREE_MB" -v s="${BENCH_TIME[skiff]}" -v r="${BENCH_TIME[sha256sum]}" \
    'BEGIN { printf "  (throughput: skiff %.0f MiB/s, sha256sum %.0f MiB/s)", mib / s, mib / r }')"

if [[ "$BENCH_VERIFY" == 1 ]]; then
    ours="$("$lb" hash "$file" | cut -d' ' -f1)"
    theirs="$(sha256sum "$file" | cut -d' ' -f1)"
    [[ "$ours" == "$theirs" ]] || bench_die "digests differ: skiff $ours, sha256sum $theirs"
    bench_log "verified: both give sha256:$ours"
fi

bench_report "sha256 throughput: one ${BENCH_TREE_MB} MiB file" sha256sum
