#!/usr/bin/env bash
# Builds lanmesh for microcontrollers: lanmesh-proto, lanmesh-core and lanmesh-embedded
# as no_std + alloc (default features off), and the minimal board image
# (examples/board/mcu-image) whose size the README reports. The rustup toolchain has no
# bare-metal targets and none can be downloaded, so this uses Debian's rustc-web with its
# std source and -Zbuild-std=core,alloc (DESIGN.md §7), like scripts/build-wasm.sh.
#
#   scripts/mcu.sh [check]      build the three crates for thumbv7em-none-eabihf and
#                               for riscv32imc-unknown-none-elf (opt-level z): what CI
#                               runs (riscv adds ~2.5 min cold, ~25 s after a change)
#   scripts/mcu.sh size         also link the image and print .text, .rodata, static RAM
#                               and how .text splits between the parts
#   scripts/mcu.sh riscv        the three crates for riscv32imc-unknown-none-elf only
#                               (ESP32-C3 class; no compare-and-swap there: bytes counts
#                               through portable-atomic, single-core, see the README)
#   scripts/mcu.sh qemu         build examples/board/mcu-qemu and run it under
#                               qemu-system-arm -M mps2-an386 (Cortex-M4F): the board's
#                               client, a router core and a laptop peer in memory; prints
#                               the board's peak heap and stack. Not part of CI.
#   scripts/mcu.sh embassy      build (not link) the embassy sensor skeleton
#                               (examples/board/embassy-sensor) for thumbv7em-none-eabihf.
#                               Not part of CI.
#
# Output goes to target/mcu (its own directory: another rustc than the native target/).
# CARGO_BUILD_JOBS is honoured.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'mcu: %s\n' "$*"; }
TARGET_DIR="$ROOT/target/mcu"
THUMB=thumbv7em-none-eabihf
RISCV=riscv32imc-unknown-none-elf

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian's rustc-web (1.96 or later) with its library source, and lld to link the image.
ensure_toolchain() {
  local missing=()
  [ -x /usr/bin/rustc ] || missing+=(rustc-web)
  [ -x /usr/bin/cargo ] || missing+=(cargo-web)
  { [ -x /usr/bin/rustc ] && [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library/alloc" ]; } \
    || missing+=(rust-web-src)
  command -v ld.lld-22 >/dev/null 2>&1 || missing+=(lld-22)
  if [ "${1:-}" = qemu ]; then
    command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
  fi
  if [ "${1:-}" = size ]; then
    command -v llvm-size-14 >/dev/null 2>&1 || command -v llvm-size >/dev/null 2>&1 || missing+=(llvm)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# The environment of every bare-metal cargo run: Debian's compiler, nightly flags allowed,
# the host's RUSTFLAGS kept out, size-optimised release profile.
mcu_cargo() {
  env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER \
    CARGO_TARGET_DIR="$TARGET_DIR" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    RUSTC_BOOTSTRAP=1 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_PANIC=abort \
    CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER=ld.lld-22 \
    CARGO_TARGET_RISCV32IMC_UNKNOWN_NONE_ELF_LINKER=ld.lld-22 \
    CARGO_TARGET_RISCV32IMC_UNKNOWN_NONE_ELF_RUSTFLAGS="--cfg portable_atomic_unsafe_assume_single_core" \
    "$@"
}

build_crates() {
  local target="$1"
  say "building lanmesh-proto, lanmesh-core, lanmesh-embedded (no_std + alloc) for $target"
  # lanmesh-embedded alone: it depends on proto and core with default features off
  # (naming them with -p would build them with their default, std).
  mcu_cargo /usr/bin/cargo build --locked --release --target "$target" -p lanmesh-embedded \
    -Zbuild-std=core,alloc
}

size_image() {
  local image="$TARGET_DIR/$THUMB/release/lanmesh-mcu-image" size nm
  say "linking the minimal image (examples/board/mcu-image) for $THUMB"
  # Its own package (bare-metal entry point and allocator), with its own lock file.
  (cd examples/board/mcu-image && mcu_cargo \
    RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
    /usr/bin/cargo build --locked --release --target "$THUMB" \
    -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem)
  size="$(command -v llvm-size-14 || command -v llvm-size)"
  nm="$(command -v llvm-nm-14 || command -v llvm-nm)"
  "$size" -A "$image" | awk '
    $1 == ".text" || $1 == ".vector_table" { text += $2 }
    $1 == ".rodata" { ro = $2 }
    $1 == ".data" { data = $2 }
    $1 == ".bss" { bss = $2 }
    END {
      printf "mcu: .text %d bytes (%.1f KiB), .rodata %d, flash %.1f KiB\n", text, text / 1024, ro, (text + ro + data) / 1024
      printf "mcu: static RAM .data + .bss %d bytes (of which the heap arena 40960)\n", data + bss
    }'
  say ".text by part:"
  "$nm" --print-size --size-sort --demangle -t d "$image" | awk '
    $3 ~ /^[tTwW]$/ {
      name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name); part = "other (core, alloc, builtins, glue)"
      if (name ~ /curve25519/) part = "X25519 (curve25519-dalek)"
      else if (name ~ /blake2/) part = "BLAKE2s (blake2)"
      else if (name ~ /chacha20|poly1305/) part = "ChaCha20-Poly1305"
      else if (name ~ /snow::/) part = "Noise (snow)"
      else if (name ~ /smoltcp/) part = "smoltcp"
      else if (name ~ /lanmesh_core/) part = "lanmesh-core"
      else if (name ~ /lanmesh_proto/) part = "lanmesh-proto"
      else if (name ~ /lanmesh_embedded|lanmesh_mcu_image/) part = "lanmesh-embedded + image"
      else if (name ~ /bytes::/) part = "bytes"
      sum[part] += $2
    }
    END { for (p in sum) printf "mcu:   %7d  %s\n", sum[p], p }' | sort -t: -k2 -rn
}

# Builds the QEMU image and runs it: fails unless it reaches its success line and exits 0.
run_qemu() {
  local image="$TARGET_DIR/$THUMB/release/lanmesh-mcu-qemu" log rc=0
  say "building the QEMU image (examples/board/mcu-qemu) for $THUMB"
  # Own package and lock file, like mcu-image; panics keep their message (it prints them).
  (cd examples/board/mcu-qemu && mcu_cargo \
    /usr/bin/cargo build --locked --release --target "$THUMB" \
    -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem)
  say "running it: qemu-system-arm -M mps2-an386, semihosting"
  log="$(mktemp)"
  timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$image" >"$log" 2>&1 || rc=$?
  cat "$log"
  if [ "$rc" != 0 ] || ! grep -q '^qemu: OK: ' "$log"; then
    rm -f "$log"
    say "FAILED: qemu exited $rc without the success line" >&2
    return 1
  fi
  rm -f "$log"
  say "qemu run passed"
}

what="${1:-check}"
ensure_toolchain "$what"
start=$SECONDS
case "$what" in
  check) build_crates "$THUMB"; build_crates "$RISCV" ;;
  size) build_crates "$THUMB"; size_image ;;
  riscv) build_crates "$RISCV" ;;
  qemu) run_qemu ;;
  embassy)
    say "building the embassy sensor skeleton (examples/board/embassy-sensor) for $THUMB"
    (cd examples/board/embassy-sensor && mcu_cargo \
      /usr/bin/cargo build --locked --release --target "$THUMB" -Zbuild-std=core,alloc) ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
  *) say "unknown command $what (check, size, riscv, qemu, embassy)" >&2; exit 2 ;;
esac
say "done in $((SECONDS - start)) s"
