#!/usr/bin/env bash
# skiff's main job, end to end and offline: make a busybox base image from Debian's
# busybox-static, import it, build an app image on it from a Dockerfile, run it, save it and
# load it into a second store. Everything happens under a temporary --root; the containers are
# removed and the root deleted at the end.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
skiff="${SKIFF:-$here/target/release/skiff}"
work="$(mktemp -d)"
cleanup() {
    "$skiff" --root "$work/root" rm -f quickstart-app >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

run() { printf '\n$ skiff %s\n' "$*"; "$skiff" --root "$work/root" "$@"; }

"$here/tests/fixtures/make-busybox-base.sh" "$work/busybox.tar"
run import -c 'CMD ["sh"]' -m "busybox base" "$work/busybox.tar" busybox:latest
run images
run history busybox
mkdir -p "$work/app"
printf 'hello from a skiff build\n' > "$work/app/message.txt"
cat > "$work/app/Dockerfile" <<'DOCKERFILE'
FROM busybox
ARG GREETING=hello
ENV GREETING=$GREETING
WORKDIR /app
COPY message.txt .
RUN echo "built at step 5 with $GREETING" > built.txt
CMD ["sh", "-c", "cat /app/message.txt /app/built.txt; echo \"GREETING=$GREETING\""]
DOCKERFILE
run build -t app:1 --build-arg GREETING=bonjour "$work/app"
run run --rm app:1
run run -d --name quickstart-app app:1 sleep 30
run ps
run exec quickstart-app cat /app/built.txt
run rm -f quickstart-app
run inspect -f '{{.Id}} {{.Os}}/{{.Architecture}} {{json .Config.Cmd}}' busybox
run save -o "$work/busybox-image.tar" busybox
printf '\n$ skiff load -i busybox-image.tar   (into a second, empty store)\n'
"$skiff" --root "$work/root2" load -i "$work/busybox-image.tar"
"$skiff" --root "$work/root2" images
run system df
