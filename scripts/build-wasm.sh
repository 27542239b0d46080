#!/usr/bin/env bash
# Builds the browser client (crates/lanmesh-wasm) into web/pkg, the files the gateway
# serves at /pkg/*. The rustup toolchain has no wasm32 std, so this uses Debian's second
# toolchain (rustc-web, with its std source) and -Zbuild-std; see DESIGN.md §7.
#
#   scripts/build-wasm.sh            install what is missing, build, write web/pkg
#   scripts/build-wasm.sh --test     also run the wasm tests in headless Chromium
#   scripts/build-wasm.sh --check    no build: fail if web/pkg is not built from the
#                                    current sources (web/pkg/.inputs-sha256 differs
#                                    from scripts/wasm-inputs.sh); with --test, then
#                                    run the tests
#
# Only web/pkg/lanmesh_wasm* (and web/pkg/.inputs-sha256) are replaced; nothing else in
# web/ is touched. Build output goes to target/wasm and tools to target/tools, so the
# native target/ directory (built by another rustc) is never invalidated.
# CARGO_BUILD_JOBS is honoured (set it to 1 on a shared small machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

run_tests=0
check_only=0
for arg in "$@"; do
  case "$arg" in
    --test) run_tests=1 ;;
    --check) check_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-wasm: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done

PKG="$ROOT/web/pkg"
TOOLS="$ROOT/target/tools"
WASM_TARGET_DIR="$ROOT/target/wasm"
WASM="$WASM_TARGET_DIR/wasm32-unknown-unknown/release/lanmesh_wasm.wasm"

say() { printf 'build-wasm: %s\n' "$*"; }

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
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

check_stale() {
  local want have f
  want="$(scripts/wasm-inputs.sh)"
  have="$(cat "$PKG/.inputs-sha256" 2>/dev/null || echo none)"
  for f in lanmesh_wasm.js lanmesh_wasm_bg.wasm; do
    if [ ! -s "$PKG/$f" ]; then
      say "web/pkg/$f is missing: run scripts/build-wasm.sh and commit web/pkg" >&2
      return 1
    fi
  done
  if [ "$want" != "$have" ]; then
    say "web/pkg is stale: built from inputs $have, the sources are now $want" >&2
    say "run scripts/build-wasm.sh and commit web/pkg" >&2
    return 1
  fi
  say "web/pkg is up to date (inputs $want)"
}

# Debian's rustc-web (1.96 or later), its cargo and std source, and the wasm linker.
toolchain_ok() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && command -v wasm-ld-22 >/dev/null 2>&1 \
    && /usr/bin/rustc --version | grep -Eq '^rustc 1\.(9[6-9]|[1-9][0-9]{2,})\.' \
    && [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library/std" ]
}

ensure_toolchain() {
  if ! toolchain_ok; then
    apt_install rustc-web cargo-web rust-web-src lld-22
    toolchain_ok || { say "the Debian wasm toolchain is still not usable" >&2; exit 1; }
  fi
}

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
bindgen_version() {
  awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/^version = "|"$/, ""); print; exit }' \
    Cargo.lock
}

ensure_bindgen() {
  local version
  version="$(bindgen_version)"
  [ -n "$version" ] || { say "no wasm-bindgen entry in Cargo.lock" >&2; exit 1; }
  if [ "$("$TOOLS/bin/wasm-bindgen" --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
    say "installing wasm-bindgen-cli $version into target/tools (a few minutes)"
    # The rustup cargo; --locked does not build with this version's lock file.
    cargo install wasm-bindgen-cli --version "$version" --root "$TOOLS"
  fi
}

# The environment of every wasm32 cargo run. RUSTFLAGS would override the rustflags of
# .cargo/config.toml (the getrandom backend), so it is cleared.
wasm_cargo() {
  env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER \
    CARGO_TARGET_DIR="$WASM_TARGET_DIR" \
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    PATH="$TOOLS/bin:$PATH" \
    "$@"
}

build() {
  local inputs stage raw gz
  inputs="$(scripts/wasm-inputs.sh)"
  say "building lanmesh-wasm for wasm32-unknown-unknown (release)"
  # Size-optimised release profile for this build only (the root Cargo.toml's release
  # profile is the native binary's).
  wasm_cargo \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=abort \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    /usr/bin/cargo build --locked --release -p lanmesh-wasm \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort

  # Generate into a staging directory, then copy only the package files: no
  # package.json or .gitignore (web/pkg is committed), nothing else in web/ touched.
  # (Debian's wasm-opt is too old and breaks the output, so there is no wasm-opt pass.)
  stage="$WASM_TARGET_DIR/bindgen"
  rm -rf "$stage"
  "$TOOLS/bin/wasm-bindgen" --target web --remove-name-section --remove-producers-section \
    --out-dir "$stage" "$WASM"
  mkdir -p "$PKG"
  rm -rf "$PKG"/lanmesh_wasm* "$PKG/snippets"
  find "$stage" -mindepth 1 -maxdepth 1 \
    ! -name package.json ! -name .gitignore ! -name README.md \
    -exec cp -R {} "$PKG/" \;
  rm -f "$PKG/.gitignore" "$PKG/package.json"
  printf '%s\n' "$inputs" >"$PKG/.inputs-sha256"

  raw="$(wc -c <"$PKG/lanmesh_wasm_bg.wasm")"
  gz="$(gzip -9 -c "$PKG/lanmesh_wasm_bg.wasm" | wc -c)"
  say "web/pkg/lanmesh_wasm_bg.wasm: $raw bytes, $gz bytes gzipped ($((gz / 1024)) KiB)"
  say "web/pkg/lanmesh_wasm.js: $(wc -c <"$PKG/lanmesh_wasm.js") bytes"
  say "inputs $inputs"
}

run_browser_tests() {
  local driver="${CHROMEDRIVER:-/usr/bin/chromedriver}"
  if ! command -v chromium >/dev/null 2>&1 || [ ! -x "$driver" ]; then
    apt_install chromium chromium-driver
    driver="${CHROMEDRIVER:-/usr/bin/chromedriver}"
  fi
  say "running the wasm tests in headless Chromium"
  # The runner (wasm-bindgen-test-runner, from target/tools/bin) starts chromedriver
  # and adds --headless and --no-sandbox itself.
  wasm_cargo CHROMEDRIVER="$driver" \
    /usr/bin/cargo test --locked -p lanmesh-wasm \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort
}

if [ "$check_only" = 1 ]; then
  check_stale
  [ "$run_tests" = 1 ] || exit 0
  ensure_toolchain
  ensure_bindgen
  run_browser_tests
  exit 0
fi

ensure_toolchain
ensure_bindgen
build
if [ "$run_tests" = 1 ]; then
  run_browser_tests
fi
