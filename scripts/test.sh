#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, every test, the docs.
# Network tests bind 127.0.0.1 only; nothing is sent on the machine's real interfaces.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "tools"
scripts/ensure-tools.sh nextest iproute2 chromium nats openssl
# In CI the discovery tests (network namespaces, as root), the browser tests and the
# federation tests (a nats-server cluster on loopback) must run, never skip.
if [ "${CI:-}" = "true" ]; then
  export LANMESH_REQUIRE_NETNS=1 LANMESH_REQUIRE_BROWSER=1 LANMESH_REQUIRE_NATS=1
fi

step "wasm client: rebuild, fail if the committed web/pkg is stale, test in Chromium"
bash scripts/build-wasm.sh --check --test

step "boards: proto, core and the embedded client as no_std for thumbv7em-none-eabihf and riscv32imc"
bash scripts/mcu.sh check

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Linux boards: lanmesh for aarch64 (cross-ci profile) run under qemu-user; armv7 type-checked"
bash scripts/cross.sh aarch64 --profile cross-ci --test
bash scripts/cross.sh armv7 --profile cross-ci --check
# The suite below runs tests/board.rs again, against this very binary (a few seconds).
export LANMESH_CROSS_BIN="$PWD/target/aarch64-unknown-linux-gnu/cross-ci/lanmesh" LANMESH_REQUIRE_CROSS=1

step "tests"
cargo test --workspace --doc --locked
cargo nextest run --workspace --all-targets --locked --no-fail-fast

step "python package: build the wheel, install it in target/py-venv, pytest"
bash scripts/python.sh --test

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
