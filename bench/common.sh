# shellcheck shell=bash
# Helpers shared by the benchmarks in bench/ (sourced, never run). See bench/README.md.
#
# Knobs (environment):
#   BENCH_TREE_MB      size of the generated tree / hashed file, in MiB (default 1024)
#   BENCH_RUNS         timed runs per command; the median is reported (default 3)
#   BENCH_TMPDIR       where the scratch directory goes (default $TMPDIR or /tmp); the
#                      benchmarks write several times BENCH_TREE_MB there
#   BENCH_HYPERFINE    set to 1 to time with hyperfine (one contender after the other)
#                      instead of `date +%s.%N` around interleaved runs (the default)
#   BENCH_VERIFY       set to 0 to skip the correctness checks after the timings
#   CARGO_TARGET_DIR   where the release binaries are looked for (default <repo>/target)
#
# Everything a benchmark writes lives in one `mktemp -d` directory, removed on exit (after
# unmounting anything still mounted below it).

BENCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_TREE_MB="${BENCH_TREE_MB:-1024}"
BENCH_RUNS="${BENCH_RUNS:-3}"
BENCH_VERIFY="${BENCH_VERIFY:-1}"
BENCH_TARGET_DIR="${CARGO_TARGET_DIR:-$BENCH_REPO/target}"
BENCH_TMP=""
BENCH_LOAD_START=""
BENCH_RESULTS=()
BENCH_CLEANUP=()

bench_die() {
    printf 'bench: %s\n' "$*" >&2
    exit 1
}

bench_log() {
    printf '%s\n' "$*" >&2
}

# bench_init NAME: makes the scratch directory $BENCH_TMP and arranges its removal.
bench_init() {
    local name="$1" base="${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"
    [[ "$BENCH_TREE_MB" =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_TREE_MB must be a positive integer (MiB), not '$BENCH_TREE_MB'"
    [[ "$BENCH_RUNS" =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_RUNS must be a positive integer, not '$BENCH_RUNS'"
    BENCH_LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
    BENCH_TMP="$(mktemp -d "$base/skiff-bench-$name.XXXXXX")"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    bench_log "scratch directory: $BENCH_TMP"
}

# bench_on_exit 'COMMAND': runs COMMAND (through bash) when the benchmark exits, before the
# scratch directory is removed. For state that lives elsewhere, such as a docker image.
bench_on_exit() {
    BENCH_CLEANUP+=("$1")
}

bench_cleanup() {
    local rc=$? c
    trap - EXIT INT TERM
    for c in "${BENCH_CLEANUP[@]}"; do
        bash -c "$c" >/dev/null 2>&1 || true
    done
    if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]]; then
        bench_unmount_below "$BENCH_TMP"
        rm -rf --one-file-system "$BENCH_TMP" || bench_log "could not remove $BENCH_TMP entirely"
    fi
    exit "$rc"
}

# bench_unmount_below DIR: unmounts whatever is mounted below DIR (deepest first), so that
# removing DIR can never reach into another filesystem. Exported for PREPARE commands.
bench_unmount_below() {
    local m
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(awk -v p="${1%/}/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}
export -f bench_unmount_below

# bench_require CMD...: fails with a clear message if a command is missing.
bench_require() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || bench_die "'$c' is not installed (needed by this benchmark)"
    done
}

# bench_bin NAME CARGO_ARGS: the path of a release binary, which must already be built (the
# benchmarks never build: they only write into their scratch directory).
bench_bin() {
    local path="$BENCH_TARGET_DIR/release/$1"
    [[ -x "$path" ]] || bench_die "$path is missing: build it first with 'cargo build --release $2'"
    bench_log "using $path (built $(date -r "$path" '+%Y-%m-%d %H:%M:%S'))"
    printf '%s\n' "$path"
}

bench_layer_bench() {
    bench_bin examples/layer_bench "-p skiff-snapshot --example layer_bench"
}

bench_skiff() {
    bench_bin skiff "-p skiff"
}

# bench_q ARG...: the arguments, shell-quoted, for building command strings.
bench_q() {
    local out="" a
    for a in "$@"; do
        out+="${out:+ }$(printf '%q' "$a")"
    done
    printf '%s' "$out"
}

# bench_machine: one paragraph about the machine and the reference tools' versions.
bench_machine() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
    printf 'machine: %s, %s cores, %s, kernel %s\n' "${cpu:-unknown cpu}" "$(nproc)" \
        "$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
    if grep -qw sha_ni /proc/cpuinfo 2>/dev/null; then
        echo "cpu has SHA-NI"
    fi
    printf 'load average: %s at the start, %s at the end (other work on the machine skews timings)\n' \
        "$BENCH_LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'scratch filesystem: %s\n' "$(df -PT "$BENCH_TMP" | awk 'NR == 2 { print $2 " on " $1 }')"
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || continue
        printf '%s: %s\n' "$t" "$("$t" --version 2>&1 | head -n1)"
    done
    if [[ "${BENCH_HYPERFINE:-0}" == 1 ]]; then
        echo "timing: hyperfine, median of $BENCH_RUNS runs per contender"
    else
        echo "timing: date +%s.%N around each run, runs interleaved, median of $BENCH_RUNS runs"
    fi
}

# bench_median < numbers: the median of the numbers on stdin, one per line.
bench_median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]
        else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# bench_fmt SECONDS: 3.10s / 0.412s
bench_fmt() {
    awk -v s="$1" 'BEGIN { if (s >= 1) printf "%.2fs", s; else printf "%.3fs", s }'
}

# bench_race NAME PREPARE COMMAND [NAME PREPARE COMMAND]...: times each contender's COMMAND
# BENCH_RUNS times and sets BENCH_TIME[NAME] to its median in seconds. Before every timed run
# its PREPARE runs (untimed), then `sync`, so that writeback of the previous run's output is
# not charged to the next one. Both go through `bash -c` with pipefail; their output goes to
# a log that is shown if one fails.
#
# The runs are interleaved, in an order that rotates each round (A B, B A, A B, ...), so that
# the contenders share whatever state the machine drifts through (page cache, writeback, the
# filesystem's caches, other work). With BENCH_HYPERFINE=1
# and hyperfine installed, each contender is timed by hyperfine instead, one after the other.
declare -A BENCH_TIME=()
bench_race() {
    (($# % 3 == 0 && $# > 0)) || bench_die "bench_race takes NAME PREPARE COMMAND triples"
    local n=$(($# / 3)) names=() preps=() cmds=() k r i t0 t1 t log="$BENCH_TMP/run.log"
    local -A times=()
    for ((k = 0; k < n; k++)); do
        names+=("${@:3*k+1:1}")
        preps+=("${@:3*k+2:1}")
        cmds+=("${@:3*k+3:1}")
        bench_log "timing ${names[k]}: ${cmds[k]}"
    done
    if [[ "${BENCH_HYPERFINE:-0}" == 1 ]]; then
        bench_require hyperfine
        local json="$BENCH_TMP/hyperfine.json"
        for ((k = 0; k < n; k++)); do
            hyperfine --shell=bash --style basic --runs "$BENCH_RUNS" --export-json "$json" \
                --prepare "set -o pipefail; ${preps[k]:-true}; sync" \
                "set -o pipefail; ${cmds[k]}" >&2 || bench_die "${names[k]} failed: ${cmds[k]}"
            t="$(sed -n 's/.*"median": *\([0-9.eE+-]*\).*/\1/p' "$json" | head -n1)"
            [[ -n "$t" ]] || bench_die "no median in hyperfine's output for ${names[k]}"
            BENCH_TIME["${names[k]}"]="$(awk -v s="$t" 'BEGIN { printf "%.6f", s }')"
        done
        return
    fi
    for ((r = 0; r < BENCH_RUNS; r++)); do
        for ((i = 0; i < n; i++)); do
            k=$(((r + i) % n))
            : >"$log"
            if ! bash -c "set -o pipefail; ${preps[k]:-true}" >>"$log" 2>&1; then
                cat "$log" >&2
                bench_die "preparing ${names[k]} failed: ${preps[k]}"
            fi
            sync
            t0="$(date +%s.%N)"
            if ! bash -c "set -o pipefail; ${cmds[k]}" >>"$log" 2>&1; then
                cat "$log" >&2
                bench_die "${names[k]} failed: ${cmds[k]}"
            fi
            t1="$(date +%s.%N)"
            t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
            times["${names[k]}"]+="$t "
            bench_log "  run $((r + 1)) ${names[k]}: $(bench_fmt "$t")"
        done
    done
    for ((k = 0; k < n; k++)); do
        # shellcheck disable=SC2086 # the times are plain numbers separated by spaces
        BENCH_TIME["${names[k]}"]="$(printf '%s\n' ${times["${names[k]}"]} | bench_median)"
        bench_log "  median ${names[k]}: $(bench_fmt "${BENCH_TIME["${names[k]}"]}")"
    done
}

# bench_compare LABEL SKIFF_SECONDS REF_NAME REF_SECONDS [TARGET_RATIO]: records (and prints)
#   LABEL: skiff 3.10s, REF 4.00s, ratio 1.29x (skiff faster)[; target >= 1.00x: met]
# The ratio is REF / skiff: above 1 means skiff took less time.
bench_compare() {
    local label="$1" s="$2" ref="$3" r="$4" target="${5:-}" line
    line="$(awk -v l="$label" -v s="$s" -v ref="$ref" -v r="$r" -v t="$target" '
        function f(x) { return x >= 1 ? sprintf("%.2fs", x) : sprintf("%.3fs", x) }
        BEGIN {
            ratio = (s > 0) ? r / s : 0
            verdict = ratio >= 1 ? "skiff faster" : "skiff slower"
            out = sprintf("%s: skiff %s, %s %s, ratio %.2fx (%s)", l, f(s), ref, f(r), ratio, verdict)
            if (t != "") out = out sprintf("; target >= %.2fx: %s", t, ratio >= t ? "met" : "MISSED")
            print out
        }')"
    BENCH_RESULTS+=("$line")
    bench_log "$line"
}

# bench_note TEXT: an extra line for the final table.
bench_note() {
    BENCH_RESULTS+=("$1")
}

# bench_report TITLE: the final table, on stdout.
bench_report() {
    local l
    printf '\n== %s ==\n' "$1"
    bench_machine "${@:2}"
    echo
    for l in "${BENCH_RESULTS[@]}"; do
        printf '%s\n' "$l"
    done
}

# bench_size FILE: its size in MB (10^6 bytes), one decimal.
bench_size() {
    awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MB", b / 1e6 }'
}

# bench_same_tree A B: whether two trees hold the same entries with the same contents, types,
# modes, owners, mtimes (seconds), link targets and hardlink counts (the top directory itself
# and directory sizes aside). Prints the first differences when they do not.
bench_same_tree() {
    local a="$1" b="$2"
    if ! diff -r --no-dereference "$a" "$b" >"$BENCH_TMP/tree.diff" 2>&1; then
        head -n 20 "$BENCH_TMP/tree.diff" >&2
        return 1
    fi
    if ! diff <(bench_tree_listing "$a") <(bench_tree_listing "$b") >"$BENCH_TMP/tree.diff"; then
        head -n 20 "$BENCH_TMP/tree.diff" >&2
        return 1
    fi
}

bench_tree_listing() {
    {
        find "$1" -mindepth 1 -type d -printf '%P|%y|%m|%U|%G|%Ts\n'
        find "$1" -mindepth 1 ! -type d -printf '%P|%y|%m|%U|%G|%Ts|%s|%n|%l\n'
    } | LC_ALL=C sort
}

# bench_make_tree DIR MIB [SEED]: a deterministic tree of about MIB MiB, the same bytes, names,
# modes and mtimes for the same arguments on any machine:
#   ~10% many small files (0-4 KiB) in nested directories,
#   ~40% medium files (64 KiB - 1 MiB),
#   ~50% a few large files (50-100 MiB each, smaller when MIB is small),
# each file either incompressible random bytes (1 in 3) or compressible text (2 in 3; the
# large ones alternate), plus some symlinks, hardlinks, empty directories and executables.
bench_make_tree() {
    local dir="$1" mib="$2" seed="${3:-skiff-bench}"
    bench_require python3
    mkdir -p "$dir"
    python3 - "$dir" "$mib" "$seed" <<'PY'
import os
import random
import sys

root, mib, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
MiB = 1 << 20
KiB = 1 << 10
MTIME = 1_700_000_000
total = mib * MiB

letters = "abcdefghijklmnopqrstuvwxyz"
vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(5000)]
vocab += [w + "\n" for w in vocab[:600]]


def text(n):
    parts, size = [], 0
    while size < n:
        chunk = " ".join(rng.choices(vocab, k=(n - size) // 6 + 64)).encode()
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)[:n]


def write(path, n, kind):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = n
        while left > 0:
            c = min(left, 8 * MiB)
            f.write(rng.randbytes(c) if kind == "bin" else text(c))
            left -= c


files, written = [], 0

# Many small files, 250 per directory, two levels deep.
budget, i = total // 10, 0
while budget > 0:
    n = min(rng.randint(0, 4 * KiB), budget)
    kind = "bin" if rng.random() < 1 / 3 else "txt"
    p = os.path.join(root, "small", f"g{i // 2500:03d}", f"d{i // 250 % 10:02d}", f"f{i:06d}.{kind}")
    write(p, n, kind)
    files.append(p)
    budget -= max(n, 1)
    written += n
    i += 1

# Medium files, 50 per directory.
budget, i = total * 4 // 10, 0
while budget > 0:
    n = min(rng.randint(64 * KiB, MiB), budget)
    kind = "bin" if rng.random() < 1 / 3 else "txt"
    p = os.path.join(root, "medium", f"d{i // 50:03d}", f"m{i:05d}.{kind}")
    write(p, n, kind)
    files.append(p)
    budget -= n
    written += n
    i += 1

# A few large files, alternately random and text.
budget, i = total - written, 0
while budget > 0:
    n = min(rng.randint(50 * MiB, 100 * MiB), budget)
    kind = "bin" if i % 2 == 0 else "txt"
    p = os.path.join(root, "large", f"l{i:02d}.{kind}")
    write(p, n, kind)
    files.append(p)
    budget -= n
    written += n
    i += 1

# Executables, symlinks, hardlinks, empty directories.
for p in files[::10]:
    os.chmod(p, 0o755)
links = os.path.join(root, "links")
os.makedirs(links)
for k, p in enumerate(rng.sample(files, min(40, len(files)))):
    target = os.path.relpath(p, links)
    if k % 2 == 0:
        os.symlink(target, os.path.join(links, f"sym{k:02d}"))
    else:
        os.link(p, os.path.join(links, f"hard{k:02d}"))
os.symlink("does-not-exist", os.path.join(links, "dangling"))
for k in range(5):
    os.makedirs(os.path.join(root, "empty", f"e{k}"))

# Fixed mtimes everywhere, children before their directories.
for d, dirs, names in os.walk(root, topdown=False):
    for name in names:
        os.utime(os.path.join(d, name), (MTIME, MTIME), follow_symlinks=False)
    os.utime(d, (MTIME, MTIME))

print(f"tree {root}: {len(files)} files, {written / MiB:.0f} MiB", file=sys.stderr)
PY
}

# bench_make_random_file FILE MIB [SEED]: MIB MiB of deterministic random bytes.
bench_make_random_file() {
    local file="$1" mib="$2" seed="${3:-skiff-bench}"
    bench_require python3
    python3 - "$file" "$mib" "$seed" <<'PY'
import random
import sys

path, mib, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
with open(path, "wb") as f:
    for _ in range(mib):
        f.write(rng.randbytes(1 << 20))
PY
}
