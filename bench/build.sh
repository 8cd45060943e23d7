#!/usr/bin/env bash
# `skiff build` on three Dockerfiles, each cold, fully cached, after a `touch` of one context
# file and after editing one, against docker's classic builder (DOCKER_BUILDKIT=0), BuildKit
# (DOCKER_BUILDKIT=1, when the docker CLI has buildx) and `buildah bud`, each when installed
# and answering. See bench/README.md.
#
#   (a) 10 small RUN steps
#   (b) COPY of a context of BENCH_BUILD_FILES files (default 10000) and BENCH_BUILD_MB MiB
#       (default 100)
#   (c) a multi-stage build with two independent stages copied into a third
#
#   cargo build --release -p skiff
#   bash bench/build.sh                      # BENCH_BUILD_MB=10 BENCH_BUILD_FILES=1000 quick
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

BENCH_BUILD_MB="${BENCH_BUILD_MB:-100}"
BENCH_BUILD_FILES="${BENCH_BUILD_FILES:-10000}"
# Issue 4's targets: (a) cold 5x docker, cached under 30 ms; (b) cold 2x BuildKit, cached and
# touched under 100 ms, edited under 250 ms; (c) 2x BuildKit.
TARGET_A_COLD=5
TARGET_B_COLD=2
TARGET_C_COLD=2

bench_init build
bench_require tar python3
skiff="$(bench_skiff)"
q() { bench_q "$@"; }

base_tar="$BENCH_TMP/busybox-base.tar"
bash "$BENCH_REPO/tests/fixtures/make-busybox-base.sh" "$base_tar" >&2
root="$BENCH_TMP/skiff-root"
"$skiff" --root "$root" import "$base_tar" bench-busybox >/dev/null

# --- The contexts. --------------------------------------------------------------------------
a="$BENCH_TMP/a"
mkdir -p "$a"
{
    echo "FROM bench-busybox"
    for i in $(seq 1 10); do echo "RUN echo step $i > /step$i"; done
} >"$a/Dockerfile"
echo a >"$a/file"

b="$BENCH_TMP/b"
mkdir -p "$b/tree"
bench_log "generating (b): $BENCH_BUILD_FILES files, $BENCH_BUILD_MB MiB"
python3 - "$b/tree" "$BENCH_BUILD_FILES" "$BENCH_BUILD_MB" <<'PY'
import os, random, sys
root, files, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random("skiff-bench-build")
size = (mib << 20) // files
for i in range(files):
    d = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(rng.randbytes(size))
PY
printf 'FROM bench-busybox\nCOPY tree /tree\nRUN true\n' >"$b/Dockerfile"

c="$BENCH_TMP/c"
mkdir -p "$c"
cat >"$c/Dockerfile" <<'DF'
FROM bench-busybox AS one
RUN for i in 1 2 3; do echo one $i >> /one; done
COPY file /file
FROM bench-busybox AS two
RUN for i in 1 2 3; do echo two $i >> /two; done
FROM bench-busybox
COPY --from=one /one /one
COPY --from=two /two /two
DF
echo c >"$c/file"

skiff_build() { # DIR [extra]
    printf '%s --root %s build -q %s' "$(q "$skiff")" "$(q "$root")" "$(q "$1")"
}
prune() { printf '%s --root %s builder prune -f >/dev/null' "$(q "$skiff")" "$(q "$root")"; }

docker_on=0
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    docker_on=1
    docker image inspect bench-busybox >/dev/null 2>&1 || docker import "$base_tar" bench-busybox >/dev/null
fi
# BuildKit: through buildx when the docker CLI has it, else through a docker CLI of 20.10 or
# older (Debian's docker.io ships /usr/bin/docker 20.10), whose `build` speaks to dockerd's
# built-in BuildKit when DOCKER_BUILDKIT=1.
buildkit_on=0
buildkit_cli=docker
if ((docker_on)); then
    if docker buildx version >/dev/null 2>&1; then
        buildkit_on=1
    elif [[ -x /usr/bin/docker ]] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
        buildkit_on=1
        buildkit_cli=/usr/bin/docker
    fi
fi
# buildah: the same busybox base in its own storage (it has no `import`), and the OCI runtime
# skiff uses here (crun refuses hybrid cgroup hosts, and buildah picks crun when installed).
buildah_on=0
buildah_runtime=()
if command -v buildah >/dev/null 2>&1; then
    if ! buildah inspect --type image bench-busybox >/dev/null 2>&1; then
        bctr="$(buildah from scratch)"
        buildah add "$bctr" "$base_tar" / >/dev/null
        buildah commit -q "$bctr" bench-busybox >/dev/null
        buildah rm "$bctr" >/dev/null
    fi
    if command -v runc >/dev/null 2>&1; then buildah_runtime=(--runtime "$(command -v runc)"); fi
    buildah_on=1
fi

docker_classic() { printf 'DOCKER_BUILDKIT=0 docker build -q %s %s >/dev/null 2>&1' "${2:-}" "$(q "$1")"; }
docker_bk() { printf 'DOCKER_BUILDKIT=1 %s build -q %s %s >/dev/null' "$buildkit_cli" "${2:-}" "$(q "$1")"; }
docker_prune() { echo 'docker builder prune -af >/dev/null 2>&1; docker image prune -f >/dev/null 2>&1'; }

run_case() { # LABEL DIR FILE_TO_TOUCH TARGET_COLD
    local label="$1" dir="$2" file="$3" target="$4"
    # cold
    local contenders=("skiff" "$(prune)" "$(skiff_build "$dir")")
    if ((docker_on)); then contenders+=("docker-classic" "$(docker_prune)" "$(docker_classic "$dir" --no-cache)"); fi
    if ((buildkit_on)); then contenders+=("buildkit" "$(docker_prune)" "$(docker_bk "$dir" --no-cache)"); fi
    bench_race "${contenders[@]}"
    local s="${BENCH_TIME[skiff]}"
    if ((docker_on)); then bench_compare "($label) cold vs docker classic" "$s" docker-classic "${BENCH_TIME[docker-classic]}" "$target"; fi
    if ((buildkit_on)); then bench_compare "($label) cold vs BuildKit" "$s" BuildKit "${BENCH_TIME[buildkit]}" "$target"; fi
    ((docker_on || buildkit_on)) || bench_note "($label) cold: skiff $(bench_fmt "$s") (no docker here)"
    # cached, touched, edited
    bench_race "skiff" "$(skiff_build "$dir") >/dev/null" "$(skiff_build "$dir")"
    bench_note "($label) fully cached: skiff $(bench_fmt "${BENCH_TIME[skiff]}")"
    bench_race "skiff" "$(skiff_build "$dir") >/dev/null; touch $(q "$file")" "$(skiff_build "$dir")"
    bench_note "($label) after touch: skiff $(bench_fmt "${BENCH_TIME[skiff]}")"
    bench_race "skiff" "$(skiff_build "$dir") >/dev/null; date +%s%N >> $(q "$file")" "$(skiff_build "$dir")"
    bench_note "($label) after an edit: skiff $(bench_fmt "${BENCH_TIME[skiff]}")"
}

run_case a "$a" "$a/file" "$TARGET_A_COLD"
run_case b "$b" "$b/tree/d00/f00000" "$TARGET_B_COLD"
run_case c "$c" "$c/file" "$TARGET_C_COLD"

if ((buildah_on)); then
    bench_race "skiff" "$(prune)" "$(skiff_build "$a")" \
        "buildah" "true" "buildah bud ${buildah_runtime[*]} -q --layers=false -f $(q "$a/Dockerfile") $(q "$a") >/dev/null"
    bench_compare "(a) cold vs buildah bud" "${BENCH_TIME[skiff]}" buildah "${BENCH_TIME[buildah]}"
    bench_race "skiff" "$(prune)" "$(skiff_build "$b")" \
        "buildah" "true" "buildah bud ${buildah_runtime[*]} -q --layers=false -f $(q "$b/Dockerfile") $(q "$b") >/dev/null"
    bench_compare "(b) cold vs buildah bud" "${BENCH_TIME[skiff]}" buildah "${BENCH_TIME[buildah]}"
else
    bench_note "buildah: not installed here (issue 4 measured (a) cold 5.8 s, (b) cold 3.3 s)"
fi
if ((!buildkit_on)); then
    bench_note "BuildKit: neither docker buildx nor a docker 20.10 CLI here (issue 4 measured (b) cold 1.48 s, cached 0.19 s; (c) cold 1.09 s)"
fi

bench_report "skiff build" docker buildah
