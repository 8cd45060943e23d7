#!/usr/bin/env bash
# Layer pack (directory -> compressed layer tar) and unpack (compressed layer tar ->
# directory) of a generated tree, gzip and zstd: skiff's layer writer and applier against
# GNU tar piped through pigz (gzip when pigz is missing) and zstd -T0, on the same tree and the
# same archive. See bench/README.md.
#
#   cargo build --release -p skiff-snapshot --example layer_bench
#   bash bench/layer.sh                      # BENCH_TREE_MB=64 for a quick check
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

bench_init layer
bench_require tar zstd
lb="$(bench_layer_bench)"
cores="$(nproc)"

if command -v pigz >/dev/null 2>&1; then
    gz_name="tar+pigz"
    gz_c="pigz -6 -p $cores -c"
    gz_d="pigz -d -c"
else
    bench_require gzip
    bench_log "pigz is not installed: the gzip reference is single-threaded gzip (apt-get install pigz)"
    gz_name="tar+gzip"
    gz_c="gzip -6 -c"
    gz_d="gzip -d -c"
fi
zst_name="tar+zstd"
zst_c="zstd -3 -T0 -q -c"
zst_d="zstd -d -q -c"

tree="$BENCH_TMP/tree"
bench_log "generating a ${BENCH_TREE_MB} MiB tree"
bench_make_tree "$tree" "$BENCH_TREE_MB"
# Read it once so that every contender starts from a warm page cache.
tar -cf - -C "$tree" . >/dev/null
tree_files="$(find "$tree" -type f | wc -l)"
tree_bytes="$(du -sb --apparent-size "$tree" | cut -f1)"

for comp in gzip zstd; do
    if [[ "$comp" == gzip ]]; then
        ref_name="$gz_name" ref_c="$gz_c" ref_d="$gz_d" ext=tar.gz
    else
        ref_name="$zst_name" ref_c="$zst_c" ref_d="$zst_d" ext=tar.zst
    fi
    skiff_out="$BENCH_TMP/skiff.$ext"
    ref_out="$BENCH_TMP/ref.$ext"

    # pack: both write a compressed tar of the whole tree.
    bench_race \
        "skiff" "rm -f $(bench_q "$skiff_out")" \
        "$(bench_q "$lb" pack "$tree" "$skiff_out" --compression "$comp")" \
        "$ref_name" "rm -f $(bench_q "$ref_out")" \
        "tar -cf - -C $(bench_q "$tree") . | $ref_c > $(bench_q "$ref_out")"
    bench_compare "pack $comp" "${BENCH_TIME[skiff]}" "$ref_name" "${BENCH_TIME[$ref_name]}" 1
    bench_note "  (archives: skiff $(bench_size "$skiff_out"), $ref_name $(bench_size "$ref_out"))"

    # unpack: both extract the same archive (the reference tool's) into an empty directory.
    skiff_dst="$BENCH_TMP/unpack-skiff"
    ref_dst="$BENCH_TMP/unpack-ref"
    bench_race \
        "skiff" "rm -rf --one-file-system $(bench_q "$skiff_dst") && mkdir $(bench_q "$skiff_dst")" \
        "$(bench_q "$lb" unpack "$ref_out" "$skiff_dst")" \
        "$ref_name" "rm -rf --one-file-system $(bench_q "$ref_dst") && mkdir $(bench_q "$ref_dst")" \
        "$ref_d $(bench_q "$ref_out") | tar -xf - -C $(bench_q "$ref_dst")"
    bench_compare "unpack $comp" "${BENCH_TIME[skiff]}" "$ref_name" "${BENCH_TIME[$ref_name]}" 1

    if [[ "$BENCH_VERIFY" == 1 ]]; then
        # skiff's unpack gives what tar's does, and skiff's archive unpacks (with tar) to the tree.
        bench_same_tree "$ref_dst" "$skiff_dst" ||
            bench_die "unpack $comp: skiff's tree differs from $ref_name's ($ref_dst vs $skiff_dst)"
        rm -rf --one-file-system "$skiff_dst" && mkdir "$skiff_dst"
        $ref_d "$skiff_out" | tar -xf - -C "$skiff_dst"
        bench_same_tree "$tree" "$skiff_dst" ||
            bench_die "pack $comp: skiff's archive does not unpack (with tar) to the tree"
        bench_log "verified: same trees from both unpackers; skiff's $comp archive unpacks with tar to the source tree"
    fi
    rm -rf --one-file-system "$skiff_dst" "$ref_dst" "$skiff_out" "$ref_out"
done

bench_report "layer pack/unpack: $tree_files files, $((tree_bytes / 1000000)) MB, $cores cores" \
    tar pigz gzip zstd
