# Sourced, not run: the route from this x86 machine to a Linux board's code, shared by
# scripts/cross.sh (the `lanmesh` binary) and scripts/python.sh --target (the wheel).
# The rustup toolchain has no std for these targets and none can be downloaded, so this
# uses Debian's second toolchain (rustc-web, with its std source) and -Zbuild-std, as the
# wasm build does (DESIGN.md §7), with Debian's cross gcc and libc to compile ring's C and
# assembly and to link.
#
#   cross_target ARCH          sets triple, gnu (the gcc prefix), packages, qemu; ARCH is
#                              aarch64 or armv7 (returns 1 for anything else)
#   cross_ensure_tools [qemu]  installs what is missing (apt), qemu-user too when asked
#   cross_cargo CMD...         runs CMD (cargo, or a tool that runs cargo such as maturin)
#                              with Debian's toolchain, the target's gcc and qemu-user
#   cross_ci_profile           cargo --config arguments defining the cheap `cross-ci` profile
#
# Intermediate files go to target/cross (BUILD_DIR, shared by both targets), so the native
# target/ directory, built by another rustc, is never invalidated. Needs ROOT (the
# checkout) and say() (one line of progress) from the script that sources it.

BUILD_DIR="$ROOT/target/cross"

cross_target() {
  case "$1" in
    aarch64)
      # Pi 3, 4, 5, Zero 2 with a 64-bit OS.
      triple=aarch64-unknown-linux-gnu
      gnu=aarch64-linux-gnu
      packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
      qemu=qemu-aarch64 ;;
    armv7)
      # Pi 2 and later with a 32-bit OS.
      triple=armv7-unknown-linux-gnueabihf
      gnu=arm-linux-gnueabihf
      packages=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
      qemu=qemu-arm ;;
    *) return 1 ;;
  esac
}

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    say "root is needed to run: $*" >&2
    exit 1
  fi
}

apt_install() {
  say "installing $* (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Debian's rustc-web (1.96 or later), its cargo and its std source.
toolchain_ok() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] \
    && /usr/bin/rustc --version | grep -Eq '^rustc 1\.(9[6-9]|[1-9][0-9]{2,})\.' \
    && [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library/std" ]
}

cross_ensure_tools() {
  local missing=()
  toolchain_ok || missing+=(rustc-web cargo-web rust-web-src)
  command -v "$gnu-gcc" >/dev/null 2>&1 && [ -d "/usr/$gnu/include" ] || missing+=("${packages[@]}")
  if [ "${1:-}" = qemu ]; then
    command -v "$qemu" >/dev/null 2>&1 || missing+=(qemu-user)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
  toolchain_ok || { say "the Debian rustc-web toolchain is still not usable" >&2; exit 1; }
}

# The profile CI builds board code with: optimised enough to run the tests under
# qemu-user quickly, cheap enough to build std and the whole binary from nothing within
# CI's budget. It lives here rather than in Cargo.toml because only these scripts use it
# (and Cargo.toml is an input of the committed wasm build, web/pkg).
cross_ci_profile=(
  --config 'profile.cross-ci.inherits="release"'
  --config 'profile.cross-ci.opt-level=1'
  --config 'profile.cross-ci.debug=0'
  --config 'profile.cross-ci.codegen-units=16'
  --config 'profile.cross-ci.lto=false'
  --config 'profile.cross-ci.incremental=false'
)

# The environment of every cross cargo run: Debian's toolchain (CARGO too, for tools that
# run cargo themselves), the target's gcc for ring's C (cc crate) and as the linker, and
# qemu-user as the runner. RUSTFLAGS and a wrapper meant for the native build are cleared.
cross_cargo() {
  local t="${triple//-/_}"
  local T="${t^^}"
  env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER \
    CARGO_TARGET_DIR="$BUILD_DIR" \
    CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    "CC_$t=$gnu-gcc" "AR_$t=$gnu-ar" \
    "CARGO_TARGET_${T}_LINKER=$gnu-gcc" \
    "CARGO_TARGET_${T}_RUNNER=$qemu -L /usr/$gnu" \
    "$@"
}
