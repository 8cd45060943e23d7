#!/usr/bin/env bash
# skiff's main job, end to end and offline: make a busybox base image from Debian's
# busybox-static, import it, list it, inspect it, save it and load it into a second store.
# Everything happens under a temporary --root that is removed at the end.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
skiff="${SKIFF:-$here/target/release/skiff}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run() { printf '\n$ skiff %s\n' "$*"; "$skiff" --root "$work/root" "$@"; }

"$here/tests/fixtures/make-busybox-base.sh" "$work/busybox.tar"
run import -c 'CMD ["sh"]' -m "busybox base" "$work/busybox.tar" busybox:latest
run images
run history busybox
run inspect -f '{{.Id}} {{.Os}}/{{.Architecture}} {{json .Config.Cmd}}' busybox
run save -o "$work/busybox-image.tar" busybox
printf '\n$ skiff load -i busybox-image.tar   (into a second, empty store)\n'
"$skiff" --root "$work/root2" load -i "$work/busybox-image.tar"
"$skiff" --root "$work/root2" images
run system df
