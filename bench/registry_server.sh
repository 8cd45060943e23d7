#!/usr/bin/env bash
# `skiff registry serve` against Debian's `docker-registry` (distribution), both on loopback
# with filesystem storage in the scratch directory, fed the same blobs with curl:
#   - push and pull of one BENCH_LAYER_MB MiB layer (default 1024), and each server's peak RSS
#     while it moves that layer (target: under 64 MB for skiff);
#   - BENCH_PULLS (default 50) concurrent pulls of a BENCH_PULL_MB MiB blob (default 100):
#     wall time, throughput and peak RSS (target: at least 2x docker-registry's throughput).
# Peak RSS is the server's VmHWM, reset between phases through /proc/PID/clear_refs.
#
#   cargo build --release -p skiff
#   bash bench/registry_server.sh       # BENCH_LAYER_MB=64 BENCH_PULL_MB=16 for a quick check
#
# BENCH_SKIFF_BIN overrides the skiff binary (e.g. a debug build, to try the script itself).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

BENCH_LAYER_MB="${BENCH_LAYER_MB:-1024}"
BENCH_PULL_MB="${BENCH_PULL_MB:-100}"
BENCH_PULLS="${BENCH_PULLS:-50}"
TARGET_THROUGHPUT=2
TARGET_RSS_MB=64
for v in BENCH_LAYER_MB BENCH_PULL_MB BENCH_PULLS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || bench_die "$v must be a positive integer"
done

bench_init registry-server
bench_require curl docker-registry python3 sha256sum xargs
skiff="${BENCH_SKIFF_BIN:-$(bench_skiff)}"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local addr="$1" i
    for ((i = 0; i < 300; i++)); do
        curl -s -o /dev/null "http://$addr/v2/" && return 0
        sleep 0.1
    done
    bench_die "nothing answers on $addr"
}

# Servers: skiff reports its port; docker-registry gets a free one in its config.
"$skiff" registry serve --addr 127.0.0.1:0 --root "$BENCH_TMP/skiff-registry" \
    >"$BENCH_TMP/skiff.out" 2>"$BENCH_TMP/skiff.err" &
skiff_pid=$!
bench_on_exit "kill $skiff_pid"
for ((i = 0; i < 300; i++)); do
    grep -q '^listening on ' "$BENCH_TMP/skiff.out" && break
    sleep 0.1
done
skiff_addr="$(sed -n 's/^listening on //p' "$BENCH_TMP/skiff.out")"
[[ -n "$skiff_addr" ]] || bench_die "skiff registry serve did not start: $(cat "$BENCH_TMP/skiff.err")"

dist_addr="127.0.0.1:$(free_port)"
cat >"$BENCH_TMP/distribution.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $BENCH_TMP/distribution
  delete:
    enabled: true
http:
  addr: $dist_addr
YML
docker-registry serve "$BENCH_TMP/distribution.yml" >"$BENCH_TMP/dist.log" 2>&1 &
dist_pid=$!
bench_on_exit "kill $dist_pid"
wait_port "$dist_addr"
wait_port "$skiff_addr"
bench_log "skiff registry on $skiff_addr (pid $skiff_pid), docker-registry on $dist_addr (pid $dist_pid)"

# push ADDR FILE DIGEST: POST for a session, then one streamed PUT of the whole blob.
push() {
    local addr="$1" file="$2" digest="$3" loc sep
    loc="$(curl -sf -X POST -D - -o /dev/null "http://$addr/v2/bench/blobs/uploads/" |
        tr -d '\r' | sed -n 's/^[Ll]ocation: //p')"
    [[ -n "$loc" ]] || bench_die "no upload location from $addr"
    [[ "$loc" == http* ]] || loc="http://$addr$loc"
    sep='?'
    [[ "$loc" == *'?'* ]] && sep='&'
    curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$file" \
        "$loc${sep}digest=$digest" -o /dev/null
}
export -f push bench_die

# peak_mb PID: VmHWM in MB; reset_peak PID: start a new peak from the current RSS.
peak_mb() {
    awk '/^VmHWM/ { printf "%.1f", $2 * 1024 / 1e6 }' "/proc/$1/status"
}
reset_peak() {
    echo 5 >"/proc/$1/clear_refs" 2>/dev/null || bench_log "cannot reset the peak RSS of $1 (not root?)"
}

# cpu_seconds PID: user + system CPU time the process used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"
}

layer="$BENCH_TMP/layer.bin"
blob="$BENCH_TMP/pull.bin"
bench_log "generating a ${BENCH_LAYER_MB} MiB layer and a ${BENCH_PULL_MB} MiB blob"
bench_make_random_file "$layer" "$BENCH_LAYER_MB" layer
bench_make_random_file "$blob" "$BENCH_PULL_MB" pull
layer_digest="sha256:$(sha256sum "$layer" | cut -d' ' -f1)"
blob_digest="sha256:$(sha256sum "$blob" | cut -d' ' -f1)"
q() { bench_q "$@"; }

# Phase 1: one big layer up and down.
reset_peak "$skiff_pid"
reset_peak "$dist_pid"
bench_race \
    skiff "" "push $(q "$skiff_addr" "$layer" "$layer_digest")" \
    docker-registry "" "push $(q "$dist_addr" "$layer" "$layer_digest")"
push_skiff="${BENCH_TIME[skiff]}"
push_dist="${BENCH_TIME[docker-registry]}"
bench_race \
    skiff "" "curl -sf -o /dev/null $(q "http://$skiff_addr/v2/bench/blobs/$layer_digest")" \
    docker-registry "" "curl -sfL -o /dev/null $(q "http://$dist_addr/v2/bench/blobs/$layer_digest")"
pull_skiff="${BENCH_TIME[skiff]}"
pull_dist="${BENCH_TIME[docker-registry]}"
rss_layer_skiff="$(peak_mb "$skiff_pid")"
rss_layer_dist="$(peak_mb "$dist_pid")"

if [[ "$BENCH_VERIFY" == 1 ]]; then
    got="sha256:$(curl -sf "http://$skiff_addr/v2/bench/blobs/$layer_digest" | sha256sum | cut -d' ' -f1)"
    [[ "$got" == "$layer_digest" ]] || bench_die "skiff served the layer wrong: $got"
fi

# Phase 2: concurrent pulls of one blob.
push "$skiff_addr" "$blob" "$blob_digest"
push "$dist_addr" "$blob" "$blob_digest"
reset_peak "$skiff_pid"
reset_peak "$dist_pid"
pulls() {
    local url="$1"
    seq "$BENCH_PULLS" | xargs -P "$BENCH_PULLS" -I{} curl -sfL -o /dev/null "$url"
}
export -f pulls
export BENCH_PULLS
cpu_skiff0="$(cpu_seconds "$skiff_pid")"
cpu_dist0="$(cpu_seconds "$dist_pid")"
bench_race \
    skiff "" "pulls $(q "http://$skiff_addr/v2/bench/blobs/$blob_digest")" \
    docker-registry "" "pulls $(q "http://$dist_addr/v2/bench/blobs/$blob_digest")"
cpu_skiff="$(awk -v a="$cpu_skiff0" -v b="$(cpu_seconds "$skiff_pid")" -v n="$BENCH_RUNS" 'BEGIN { printf "%.2f", (b - a) / n }')"
cpu_dist="$(awk -v a="$cpu_dist0" -v b="$(cpu_seconds "$dist_pid")" -v n="$BENCH_RUNS" 'BEGIN { printf "%.2f", (b - a) / n }')"
rss_pulls_skiff="$(peak_mb "$skiff_pid")"
rss_pulls_dist="$(peak_mb "$dist_pid")"

mbps() {
    awk -v mb="$1" -v n="$2" -v s="$3" 'BEGIN { printf "%.0f MB/s", mb * n * 1.048576 / s }'
}

bench_compare "push ${BENCH_LAYER_MB} MiB layer" "$push_skiff" "docker-registry" "$push_dist"
bench_compare "pull ${BENCH_LAYER_MB} MiB layer" "$pull_skiff" "docker-registry" "$pull_dist"
bench_compare "${BENCH_PULLS} concurrent pulls of ${BENCH_PULL_MB} MiB" \
    "${BENCH_TIME[skiff]}" "docker-registry" "${BENCH_TIME[docker-registry]}" "$TARGET_THROUGHPUT"
bench_note "  throughput: skiff $(mbps "$BENCH_PULL_MB" "$BENCH_PULLS" "${BENCH_TIME[skiff]}"), docker-registry $(mbps "$BENCH_PULL_MB" "$BENCH_PULLS" "${BENCH_TIME[docker-registry]}")"
bench_note "  server CPU per round of pulls: skiff ${cpu_skiff}s, docker-registry ${cpu_dist}s, ratio $(awk -v s="$cpu_skiff" -v d="$cpu_dist" 'BEGIN { printf "%.2fx", (s > 0 ? d / s : 0) }') (the curl clients share the same cores)"
bench_note "$(awk -v s="$rss_layer_skiff" -v d="$rss_layer_dist" -v t="$TARGET_RSS_MB" -v mb="$BENCH_LAYER_MB" 'BEGIN {
    printf "peak RSS moving the %s MiB layer: skiff %.1f MB, docker-registry %.1f MB, ratio %.2fx; target skiff < %d MB: %s",
        mb, s, d, (s > 0 ? d / s : 0), t, (s < t ? "met" : "MISSED") }')"
bench_note "$(awk -v s="$rss_pulls_skiff" -v d="$rss_pulls_dist" -v n="$BENCH_PULLS" 'BEGIN {
    printf "peak RSS during %d concurrent pulls: skiff %.1f MB, docker-registry %.1f MB, ratio %.2fx", n, s, d, (s > 0 ? d / s : 0) }')"
bench_report "registry server: skiff registry serve vs docker-registry" curl docker-registry
