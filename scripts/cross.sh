#!/usr/bin/env bash
# Builds the `lanmesh` binary and the Pi sensor example (examples/board) for a
# Raspberry-Pi-class Linux board on this x86 machine,
# from the package registries alone: Debian's rustc-web toolchain with -Zbuild-std and
# Debian's cross gcc and libc (scripts/cross-env.sh, which scripts/python.sh --target
# uses for the Python wheel too).
#
#   scripts/cross.sh ARCH              install what is missing, build the release binary
#                                      into target/TRIPLE/release/lanmesh (the sensor into
#                                      target/TRIPLE/release/examples/board), print sizes
#   scripts/cross.sh ARCH --test       also run tests/board.rs: the binaries under qemu-user
#                                      as a listener and a sender against an x86 router
#   scripts/cross.sh ARCH --bench      also measure: sizes and the idle RSS of a listener
#                                      under qemu-user, into bench/results/board-ARCH.json,
#                                      and bench/results/boards.md from every board-*.json
#   scripts/cross.sh ARCH --check      type-check for the target only (no code generated)
#   scripts/cross.sh ARCH --profile P  build with cargo profile P instead into
#                                      target/TRIPLE/P/lanmesh; cross-ci is the cheap one
#                                      CI uses (defined below, not in Cargo.toml)
#
# ARCH is aarch64 (aarch64-unknown-linux-gnu: Pi 3, 4, 5, Zero 2 with a 64-bit OS) or
# armv7 (armv7-unknown-linux-gnueabihf: Pi 2 and later with a 32-bit OS).
#
# Intermediate files go to target/cross (shared by both targets), so the native target/
# directory, built by another rustc, is never invalidated; only the finished binary is
# copied to target/TRIPLE/PROFILE/lanmesh. The board binary leaves out the nats-server
# baseline of `lanmesh bench` (the cargo feature nats-bench): nothing else differs.
# CARGO_BUILD_JOBS is honoured (set it to 1 on a shared small machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
say() { printf 'cross: %s\n' "$*"; }

arch=""
profile=release
mode=build
run_tests=0
bench=0
while [ $# -gt 0 ]; do
  case "$1" in
    aarch64 | armv7) arch="$1" ;;
    --test) run_tests=1 ;;
    --bench) bench=1 ;;
    --check) mode=check ;;
    --profile)
      [ $# -ge 2 ] || { say "--profile needs a name" >&2; exit 2; }
      profile="$2"
      shift ;;
    -h | --help) usage; exit 0 ;;
    *) say "unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[ -n "$arch" ] || { say "which board? aarch64 or armv7" >&2; usage >&2; exit 2; }
if [ "$mode" = check ] && [ $((run_tests + bench)) -gt 0 ]; then
  say "--check builds no binary to test or measure" >&2
  exit 2
fi

# The target's triple, gcc, Debian packages and qemu; the cross toolchain's environment.
source "$ROOT/scripts/cross-env.sh"
cross_target "$arch"
# The cargo profile `dev` keeps its output in a directory named `debug`.
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug
OUT_DIR="$ROOT/target/$triple/$profile_dir"

# The size of a binary once stripped (what is copied to a board), in bytes.
stripped_size() {
  local stripped size
  stripped="$(mktemp)"
  "$gnu-strip" -o "$stripped" "$1"
  size=$(wc -c <"$stripped")
  rm -f "$stripped"
  echo "$size"
}

report_size() {
  local bin="$1" stripped
  stripped=$(stripped_size "$bin")
  say "$(realpath --relative-to="$ROOT" "$bin"): $(wc -c <"$bin") bytes," \
    "$stripped bytes stripped ($((stripped / 1024)) KiB)"
}

# What is built: the CLI without the nats baseline, std from Debian's source.
cargo_args=(
  "${cross_ci_profile[@]}" --locked --profile "$profile" --target "$triple"
  -Zbuild-std=std,panic_abort -p lanmesh-cli --no-default-features --bin lanmesh
)
# The sensor example is not type-checked on its own: it uses nothing target-specific.
[ "$mode" = build ] && cargo_args+=(--example board)

if [ $((run_tests + bench)) -gt 0 ]; then cross_ensure_tools qemu; else cross_ensure_tools; fi
started=$SECONDS
if [ "$mode" = check ]; then
  say "checking lanmesh for $triple (profile $profile)"
  cross_cargo /usr/bin/cargo check "${cargo_args[@]}"
  say "checked in $((SECONDS - started)) s"
  exit 0
fi

say "building lanmesh for $triple (profile $profile)"
cross_cargo /usr/bin/cargo build "${cargo_args[@]}"
mkdir -p "$OUT_DIR/examples"
cp "$BUILD_DIR/$triple/$profile_dir/lanmesh" "$OUT_DIR/lanmesh"
cp "$BUILD_DIR/$triple/$profile_dir/examples/board" "$OUT_DIR/examples/board"
build_seconds=$((SECONDS - started))
say "built in $build_seconds s"
report_size "$OUT_DIR/lanmesh"
report_size "$OUT_DIR/examples/board"

if [ "$run_tests" = 1 ]; then
  scripts/ensure-tools.sh nextest
  say "running tests/board.rs: $(realpath --relative-to="$ROOT" "$OUT_DIR/lanmesh") under $qemu"
  LANMESH_CROSS_BIN="$OUT_DIR/lanmesh" LANMESH_REQUIRE_CROSS=1 \
    cargo nextest run --locked --test board --no-fail-fast
fi

if [ "$bench" = 1 ]; then
  scripts/ensure-tools.sh nextest
  say "measuring the idle RSS of a listener under $qemu"
  rss_line=$(LANMESH_CROSS_BIN="$OUT_DIR/lanmesh" LANMESH_REQUIRE_CROSS=1 \
    cargo nextest run --locked --test board --run-ignored only --no-capture \
    -E 'test(idle_rss_of_a_board_listener_under_qemu)' 2>/dev/null | sed -n 's/^BOARD-RSS //p')
  [ -n "$rss_line" ] || { say "the RSS measurement printed nothing" >&2; exit 1; }
  mkdir -p bench/results
  ARCH="$arch" TRIPLE="$triple" PROFILE="$profile" \
    BIN_BYTES=$(wc -c <"$OUT_DIR/lanmesh") BIN_STRIPPED=$(stripped_size "$OUT_DIR/lanmesh") \
    SENSOR_STRIPPED=$(stripped_size "$OUT_DIR/examples/board") RSS="$rss_line" \
    QEMU_VERSION="$("$qemu" --version | head -1)" CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" \
    python3 - <<'PY'
import glob, json, os, platform, time

env = os.environ
rss = json.loads(env["RSS"])
row = {
    "arch": env["ARCH"],
    "triple": env["TRIPLE"],
    "profile": env["PROFILE"],
    "lanmesh_bytes": int(env["BIN_BYTES"]),
    "lanmesh_stripped_bytes": int(env["BIN_STRIPPED"]),
    "sensor_example_stripped_bytes": int(env["SENSOR_STRIPPED"]),
    "idle_listener_rss_kib_under_qemu": rss["board_listener_qemu_rss_kib"],
    "idle_listener_rss_kib_x86_debug_build_same_run": rss["x86_listener_rss_kib"],
    "qemu": env["QEMU_VERSION"],
    "machine": f'{env["CPU"]}, {os.cpu_count()} cores, {platform.system()} {platform.release()}',
    "date": time.strftime("%Y-%m-%d"),
}
with open(f"bench/results/board-{row['arch']}.json", "w") as f:
    json.dump(row, f, indent=2)
    f.write("\n")

rows = []
for path in sorted(glob.glob("bench/results/board-*.json")):
    with open(path) as f:
        rows.append(json.load(f))
kib = lambda n: f"{n / 1024:,.0f} KiB"
lines = [
    "# lanmesh on Linux boards (scripts/cross.sh ARCH --bench)",
    "",
    "Sizes are of the stripped binaries (release unless the profile says otherwise). RSS",
    "is the largest of an idle `lanmesh listen` after one acked message, sampled for 5 s,",
    "**under qemu-user emulation** on the x86 machine: the qemu process's RSS, which",
    "counts the emulator and its translated code with the program, so it is not what a",
    "board would show. Beside it, an x86 listener of the same run (the unoptimised build",
    "the tests use), as a reference.",
    "",
    "| target | profile | `lanmesh` stripped | sensor example stripped | idle listener RSS, under qemu-user | x86 listener RSS (debug build) | machine | date |",
    "|---|---|---|---|---|---|---|---|",
]
for r in rows:
    lines.append(
        f"| `{r['triple']}` | {r['profile']} | {kib(r['lanmesh_stripped_bytes'])} "
        f"| {kib(r['sensor_example_stripped_bytes'])} "
        f"| {r['idle_listener_rss_kib_under_qemu']:,} KiB ({r['qemu'].split(' (')[0]}) "
        f"| {r['idle_listener_rss_kib_x86_debug_build_same_run']:,} KiB | {r['machine']} | {r['date']} |"
    )
with open("bench/results/boards.md", "w") as f:
    f.write("\n".join(lines) + "\n")
PY
  say "wrote bench/results/board-$arch.json and bench/results/boards.md"
fi
