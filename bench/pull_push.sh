#!/usr/bin/env bash
# `skiff push` and `skiff pull` of a multi-layer image of BENCH_IMAGE_MB MiB (default 1024, or
# BENCH_TREE_MB when that is smaller) to and from Debian's docker-registry on a loopback port,
# against `skopeo copy` of the same image (and docker/podman when their engines answer). See
# bench/README.md.
#
#   cargo build --release -p skiff
#   bash bench/pull_push.sh                  # BENCH_IMAGE_MB=64 for a quick check
#
# push: a store holding the image (loaded, layers uncompressed as skiff and docker keep them)
#       -> an empty registry; skiff compresses on all cores. Every run starts from a freshly
#       loaded store and an emptied registry, so nothing is reused between runs.
# pull: the registry (filled once by skiff) -> an empty store.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

# Targets from issue 5: push at least 2x faster than podman, pull at least 3x faster than
# docker. Figures measured earlier for a 200 MB two-layer image on a loopback registry, shown
# when the engines are not running here (not from this run).
TARGET_PUSH=2
TARGET_PULL=3
REF_PODMAN_PUSH_200=1.14
REF_DOCKER_PULL_200=2.59
BENCH_LAYERS="${BENCH_LAYERS:-4}"

if [[ -z "${BENCH_IMAGE_MB:-}" ]]; then
    BENCH_IMAGE_MB=1024
    [[ "${BENCH_TREE_MB}" =~ ^[0-9]+$ ]] && ((BENCH_TREE_MB < 1024)) && BENCH_IMAGE_MB="$BENCH_TREE_MB"
fi
[[ "$BENCH_IMAGE_MB" =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_IMAGE_MB must be a positive integer (MiB)"
[[ "$BENCH_LAYERS" =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_LAYERS must be a positive integer"

bench_init pull-push
bench_require tar sha256sum skopeo docker-registry python3
skiff="$(bench_skiff)"
q() { bench_q "$@"; }

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch="$(uname -m)" ;;
esac

# --- The image: BENCH_LAYERS layers, as a docker-archive built by hand. --------------------
name_path="bench/image"
img="$BENCH_TMP/image"
mkdir -p "$img"
diff_ids=()
layer_paths=()
history=()
per_layer=$(((BENCH_IMAGE_MB + BENCH_LAYERS - 1) / BENCH_LAYERS))
for ((n = 1; n <= BENCH_LAYERS; n++)); do
    bench_log "generating layer $n of $BENCH_LAYERS ($per_layer MiB)"
    bench_make_tree "$BENCH_TMP/layer$n" "$per_layer" "skiff-bench-layer$n"
    tar --sort=name --owner=0 --group=0 --numeric-owner -cf "$BENCH_TMP/layer$n.tar" -C "$BENCH_TMP/layer$n" .
    rm -rf "${BENCH_TMP:?}/layer$n"
    d="$(sha256sum "$BENCH_TMP/layer$n.tar" | cut -d' ' -f1)"
    mkdir -p "$img/$d"
    mv "$BENCH_TMP/layer$n.tar" "$img/$d/layer.tar"
    diff_ids+=("\"sha256:$d\"")
    layer_paths+=("$d/layer.tar")
    history+=("{\"created\":\"2023-11-14T22:13:20Z\",\"created_by\":\"skiff bench: layer $n\"}")
done
join() { local IFS=,; printf '%s' "$*"; }
printf '{"architecture":"%s","config":{"Cmd":["sh"]},"created":"2023-11-14T22:13:20Z","history":[%s],"os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$arch" "$(join "${history[@]}")" "$(join "${diff_ids[@]}")" >"$img/config.json"
config="$(sha256sum "$img/config.json" | cut -d' ' -f1).json"
mv "$img/config.json" "$img/$config"
lp=()
for p in "${layer_paths[@]}"; do lp+=("\"$p\""); done
printf '[{"Config":"%s","RepoTags":["skiff-bench:latest"],"Layers":[%s]}]' "$config" "$(join "${lp[@]}")" >"$img/manifest.json"
archive="$BENCH_TMP/image.tar"
tar -cf "$archive" -C "$img" manifest.json "$config" "${layer_paths[@]}"
rm -rf "${img:?}"
bench_log "image: $(bench_size "$archive") docker-archive, $BENCH_LAYERS layers"

# --- The registry: docker-registry (distribution 2.8) on a free loopback port. -------------
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
storage="$BENCH_TMP/registry"
mkdir -p "$storage"
cat >"$BENCH_TMP/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: skiff-bench
EOF
docker-registry serve "$BENCH_TMP/registry.yml" >"$BENCH_TMP/registry.log" 2>&1 &
registry_pid=$!
bench_on_exit "kill $registry_pid"
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
reg="127.0.0.1:$port"
bench_log "docker-registry on $reg (pid $registry_pid)"
empty_registry="rm -rf $(q "$storage")/docker"

# --- push: a loaded store -> the emptied registry. -----------------------------------------
src="$BENCH_TMP/skiff-src"
fresh_src="bench_unmount_below $(q "$src"); rm -rf --one-file-system $(q "$src"); $(q "$skiff" --root "$src" load -q -i "$archive") >/dev/null && $(q "$skiff" --root "$src" tag skiff-bench:latest "$reg/$name_path:skiff")"
push=(
    "skiff" "$empty_registry; $fresh_src" "$(q "$skiff" --root "$src" push "$reg/$name_path:skiff") >/dev/null"
    "skopeo" "$empty_registry"
    "skopeo --insecure-policy copy --quiet --dest-tls-verify=false $(q "docker-archive:$archive" "docker://$reg/$name_path:skopeo")"
)
docker_on=0
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    docker_on=1
    docker load -q -i "$archive" >&2
    docker tag skiff-bench:latest "$reg/$name_path:docker"
    bench_on_exit "docker rmi -f skiff-bench:latest $(q "$reg/$name_path:docker")"
    push+=("docker" "$empty_registry" "docker push -q $(q "$reg/$name_path:docker") >/dev/null")
else
    bench_log "docker engine not running here (docker info fails): skipping docker push/pull"
fi
podman_on=0
pod="podman --root $(q "$BENCH_TMP/podman/root") --runroot $(q "$BENCH_TMP/podman/run")"
if command -v podman >/dev/null 2>&1 && bash -c "$pod info" >/dev/null 2>&1; then
    podman_on=1
    bash -c "$pod load -q -i $(q "$archive")" >&2
    bench_on_exit "$pod rmi -af"
    push+=("podman" "$empty_registry" "$pod push -q --tls-verify=false skiff-bench:latest $(q "docker://$reg/$name_path:podman")")
else
    bench_log "podman not installed or not working here: skipping podman push/pull"
fi
bench_race "${push[@]}"
declare -A pushed=()
for k in "${!BENCH_TIME[@]}"; do pushed[$k]="${BENCH_TIME[$k]}"; done

# --- pull: the registry (filled by skiff) -> an empty store. ---------------------------------
# docker must not keep the layers it loaded for its push, or its pull finds them all.
((docker_on)) && docker rmi -f skiff-bench:latest "$reg/$name_path:docker" >/dev/null 2>&1
bash -c "$empty_registry; $fresh_src"
"$skiff" --root "$src" push "$reg/$name_path:skiff" >/dev/null
dst="$BENCH_TMP/skiff-dst"
pull=(
    "skiff" "bench_unmount_below $(q "$dst"); rm -rf --one-file-system $(q "$dst")"
    "$(q "$skiff" --root "$dst" pull -q "$reg/$name_path:skiff") >/dev/null"
    "skopeo" "rm -rf $(q "$BENCH_TMP/oci-dst")"
    "skopeo --insecure-policy copy --quiet --src-tls-verify=false $(q "docker://$reg/$name_path:skiff" "oci:$BENCH_TMP/oci-dst:x")"
)
image_id="sha256:${config%.json}"
((docker_on)) && bench_on_exit "docker rmi -f $image_id"
# Every tag of the image goes, or docker finds its layers still there.
((docker_on)) && pull+=("docker" "docker rmi -f $image_id >/dev/null 2>&1 || true"
    "docker pull -q $(q "$reg/$name_path:skiff") >/dev/null")
((podman_on)) && pull+=("podman" "$pod rmi -f $(q "$reg/$name_path:skiff") >/dev/null 2>&1 || true"
    "$pod pull -q --tls-verify=false $(q "$reg/$name_path:skiff") >/dev/null")
bench_race "${pull[@]}"

# --- Peak memory (issue 5: under 64 MB while moving a big layer; blobs are streamed). -------
rss_note="  (peak RSS: /usr/bin/time not installed, not measured)"
if [[ -x /usr/bin/time ]]; then
    bash -c "$empty_registry; $fresh_src"
    rss_push="$(/usr/bin/time -f %M "$skiff" --root "$src" push "$reg/$name_path:skiff" 2>&1 >/dev/null | tail -n1)"
    bash -c "bench_unmount_below $(q "$dst"); rm -rf --one-file-system $(q "$dst")"
    rss_pull="$(/usr/bin/time -f %M "$skiff" --root "$dst" pull -q "$reg/$name_path:skiff" 2>&1 >/dev/null | tail -n1)"
    rss_note="$(awk -v a="$rss_push" -v b="$rss_pull" 'BEGIN { printf "  (peak RSS: skiff push %.1f MB, skiff pull %.1f MB; target < 64 MB)", a / 1024, b / 1024 }')"
fi

# --- Results. -----------------------------------------------------------------------------
bench_compare "push" "${pushed[skiff]}" "skopeo copy docker-archive: -> docker://" "${pushed[skopeo]}"
((podman_on)) && bench_compare "push" "${pushed[skiff]}" "podman push" "${pushed[podman]}" "$TARGET_PUSH"
((docker_on)) && bench_compare "push" "${pushed[skiff]}" "docker push" "${pushed[docker]}"
bench_compare "pull" "${BENCH_TIME[skiff]}" "skopeo copy docker:// -> oci:" "${BENCH_TIME[skopeo]}"
((docker_on)) && bench_compare "pull" "${BENCH_TIME[skiff]}" "docker pull" "${BENCH_TIME[docker]}" "$TARGET_PULL"
((podman_on)) && bench_compare "pull" "${BENCH_TIME[skiff]}" "podman pull" "${BENCH_TIME[podman]}"
bench_note "$rss_note"
bench_note "  (image $(bench_size "$archive") uncompressed in $BENCH_LAYERS layers; skiff pull stores the"
bench_note "   blobs verified and measured, layers unpack on first use; docker pull also unpacks)"
((docker_on)) || bench_note "  (docker: engine not running here, not measured)"
((podman_on)) || bench_note "  (podman: not installed or not working here, not measured)"
if ((!podman_on || !docker_on)); then
    bench_note ""
    bench_note "Earlier figures for a 200 MB two-layer image (issue 5, not this run): podman push ${REF_PODMAN_PUSH_200}s, docker pull ${REF_DOCKER_PULL_200}s"
fi

if [[ "$BENCH_VERIFY" == 1 ]]; then
    # What skiff pushed is what skopeo reads, and pulling it back gives the same image.
    d_skiff="$("$skiff" --root "$dst" image inspect --format '{{index .RepoDigests 0}}' "$reg/$name_path:skiff")"
    d_skopeo="$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$reg/$name_path:skiff")"
    [[ "$d_skiff" == *"@$d_skopeo" ]] || bench_die "digests differ: skiff pulled $d_skiff, skopeo sees $d_skopeo"
    id_src="$("$skiff" --root "$src" images -q --no-trunc "$reg/$name_path:skiff")"
    id_dst="$("$skiff" --root "$dst" images -q --no-trunc "$reg/$name_path:skiff")"
    [[ -n "$id_src" && "$id_src" == "$id_dst" ]] || bench_die "image IDs differ: pushed $id_src, pulled $id_dst"
    bench_log "verified: skopeo sees the digest skiff pulled; pull(push(x)) is image $id_src"
fi

bench_report "push/pull: ${BENCH_IMAGE_MB} MiB in $BENCH_LAYERS layers, loopback docker-registry" skopeo docker podman docker-registry
