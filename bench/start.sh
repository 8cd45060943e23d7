#!/usr/bin/env bash
# Container start latency: `skiff run --rm busybox true` end to end (resolve, snapshot,
# bundle, monitor, runtime create/start/wait/delete, removal), against a bare `runc run` of a
# prepared bundle of the same rootfs (the floor: the OCI runtime alone), and against
# `docker run --rm` and `podman run --rm --net none` when their engines answer. Then the
# memory of skiff's per-container monitor. See bench/README.md.
#
#   cargo build --release -p skiff
#   sudo bash bench/start.sh                 # BENCH_RUNS=21 for steadier medians
set -euo pipefail
BENCH_RUNS="${BENCH_RUNS:-11}"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

# Targets from issue 3: at least 10x faster than docker run, 3x faster than podman run, and
# skiff's own overhead within 10 ms of the bare runtime.
TARGET_DOCKER=10
TARGET_PODMAN=3
OVERHEAD_MS=10
MONITORS="${BENCH_MONITORS:-10}"

[[ "$(id -u)" == 0 ]] || bench_die "run as root (containers need namespaces, cgroups and mounts)"
bench_init start
bench_require tar awk
skiff="$(bench_skiff)"
runc="$(command -v runc || true)"
[[ -n "$runc" ]] || runc=/usr/sbin/runc
[[ -x "$runc" ]] || bench_die "runc is not installed (apt-get install runc)"
q() { bench_q "$@"; }

base="$BENCH_TMP/busybox-base.tar"
bash "$BENCH_REPO/tests/fixtures/make-busybox-base.sh" "$base" >&2
root="$BENCH_TMP/skiff-root"
"$skiff" --root "$root" import "$base" bench-busybox >/dev/null
bench_on_exit "$(q "$skiff") --root $(q "$root") rm -f \$($(q "$skiff") --root $(q "$root") ps -aq)"

# The bare runtime: the same rootfs, runc's default spec (private namespaces, no network but
# lo), `true` as the command, a fresh container id per run.
bundle="$BENCH_TMP/bundle"
mkdir -p "$bundle/rootfs"
tar -C "$bundle/rootfs" -xf "$base"
(cd "$bundle" && "$runc" spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"true"/' "$bundle/config.json"
runc_root="$BENCH_TMP/runc-state"
bare_cmd="$(q "$runc") --root $(q "$runc_root") run -b $(q "$bundle") bench-\$\$-\$RANDOM </dev/null"
skiff_cmd="$(q "$skiff") --root $(q "$root") run --rm bench-busybox true"

# Warm both up once (page cache, first unpack of the layer).
bash -c "$skiff_cmd" >&2
bash -c "$bare_cmd" >&2

contenders=(skiff "" "$skiff_cmd" runc "" "$bare_cmd")
have_docker=0
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    docker import "$base" skiff-bench-busybox:latest >/dev/null
    bench_on_exit "docker rmi -f skiff-bench-busybox:latest"
    docker run --rm skiff-bench-busybox true
    contenders+=(docker "" "docker run --rm skiff-bench-busybox true")
    have_docker=1
fi
have_podman=0
if command -v podman >/dev/null 2>&1; then
    proot="$BENCH_TMP/podman-root"
    prun="$BENCH_TMP/podman-run"
    pod="podman --root $(q "$proot") --runroot $(q "$prun")"
    if bash -c "$pod import $(q "$base") skiff-bench-busybox" >/dev/null 2>&1 &&
        bash -c "$pod run --rm --net none skiff-bench-busybox true" >/dev/null 2>&1; then
        contenders+=(podman "" "$pod run --rm --net none skiff-bench-busybox true")
        have_podman=1
    fi
fi

bench_race "${contenders[@]}"
s="${BENCH_TIME[skiff]}"
bench_compare "run --rm true vs bare runc run" "$s" "runc run" "${BENCH_TIME[runc]}"
overhead_ms="$(awk -v s="$s" -v r="${BENCH_TIME[runc]}" 'BEGIN { printf "%.1f", (s - r) * 1000 }')"
bench_note "skiff's own overhead over bare runc: ${overhead_ms} ms; target <= ${OVERHEAD_MS} ms: $(awk -v o="$overhead_ms" -v t="$OVERHEAD_MS" 'BEGIN { print (o <= t) ? "met" : "MISSED" }')"
if ((have_docker)); then
    bench_compare "run --rm true vs docker run --rm" "$s" "docker" "${BENCH_TIME[docker]}" "$TARGET_DOCKER"
else
    bench_note "docker: not installed or its daemon is not running (target >= ${TARGET_DOCKER}x not measured)"
fi
if ((have_podman)); then
    bench_compare "run --rm true vs podman run --rm --net none" "$s" "podman" "${BENCH_TIME[podman]}" "$TARGET_PODMAN"
else
    bench_note "podman: not installed (target >= ${TARGET_PODMAN}x not measured)"
fi

# exec into a running container: skiff exec against docker exec (target: 5x faster).
TARGET_EXEC=5
execbox="$("$skiff" --root "$root" run -d bench-busybox sleep 600)"
exec_contenders=(skiff-exec "" "$(q "$skiff") --root $(q "$root") exec $execbox true")
if ((have_docker)); then
    dexec="$(docker run -d skiff-bench-busybox sleep 600)"
    bench_on_exit "docker rm -f $dexec"
    exec_contenders+=(docker-exec "" "docker exec $dexec true")
fi
bench_race "${exec_contenders[@]}"
if ((have_docker)); then
    bench_compare "exec true vs docker exec" "${BENCH_TIME[skiff-exec]}" "docker" "${BENCH_TIME[docker-exec]}" "$TARGET_EXEC"
else
    bench_note "exec true: skiff $(bench_fmt "${BENCH_TIME[skiff-exec]}"); docker not running (target >= ${TARGET_EXEC}x not measured)"
fi
"$skiff" --root "$root" rm -f "$execbox" >/dev/null

# Monitor memory: MONITORS detached containers; RSS of each monitor (private anonymous
# memory, and the proportional share of the binary's pages it maps), averaged.
ids=()
for ((i = 0; i < MONITORS; i++)); do
    ids+=("$("$skiff" --root "$root" run -d bench-busybox sleep 600)")
done
sleep 0.5
stats="$(for id in "${ids[@]}"; do
    pid="$(sed -n 's/.*"MonitorPid":\([0-9]*\).*/\1/p' "$root/containers/$id/state.json")"
    awk '/^(Rss|Pss|Private_Dirty):/ { v[$1] += $2 } END {
        printf "%d %d %d\n", v["Rss:"], v["Pss:"], v["Private_Dirty:"] }' "/proc/$pid/smaps_rollup"
done | awk '{ r += $1; p += $2; d += $3; n++ } END { printf "%.0f %.0f %.0f", r / n, p / n, d / n }')"
read -r rss pss private <<<"$stats"
bench_note "monitor memory per container ($MONITORS running): RSS ${rss} KiB, of which private (what each container adds) ${private} KiB; PSS ${pss} KiB (the skiff binary's pages are shared by all monitors and commands); target RSS < 2048 KiB: $( ((rss < 2048)) && echo met || echo "MISSED (private memory: $( ((private < 2048)) && echo "under" || echo "over") 2048 KiB)")"
"$skiff" --root "$root" rm -f "${ids[@]}" >/dev/null

bench_report "container start (issue 3)" "$runc" docker podman
