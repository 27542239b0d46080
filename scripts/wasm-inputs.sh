#!/usr/bin/env bash
# Prints one SHA-256 over everything the browser client in web/pkg is built from: the
# sources and manifests of lanmesh-proto, lanmesh-core and lanmesh-wasm, the root
# Cargo.toml, Cargo.lock
# and .cargo/config.toml. scripts/build-wasm.sh stores it in web/pkg/.inputs-sha256, and
# `scripts/build-wasm.sh --check` compares, so CI notices a stale committed build.
# Independent of git (works on an unpacked tarball) and of the locale.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LC_ALL=C

{
  find crates/lanmesh-proto crates/lanmesh-core crates/lanmesh-wasm \
    -name target -prune -o \
    -type f \( -name '*.rs' -o -name Cargo.toml \) -print
  for f in Cargo.toml Cargo.lock .cargo/config.toml; do
    [ -f "$f" ] && echo "$f"
  done
} | sort | while IFS= read -r f; do
  # Path and content both count: a renamed file changes the hash.
  printf '%s  %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"
done | sha256sum | cut -d' ' -f1
