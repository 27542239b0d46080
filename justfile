# lanmesh developer tasks. `just --list` is the map; `just ci` is exactly what CI runs.

# List the recipes.
default:
    @just --list

# Run a router on defaults (mesh "lanmesh", TCP 0.0.0.0:7400).
run *ARGS:
    cargo run --release -- router {{ARGS}}

# Format the code.
fmt:
    cargo fmt --all

# Lints as CI runs them (warnings are errors).
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Every test (unit, property, end-to-end on 127.0.0.1).
test:
    scripts/ensure-tools.sh nextest
    cargo test --workspace --doc --locked
    cargo nextest run --workspace --all-targets --locked --no-fail-fast

# API docs, warnings as errors.
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# The whole suite, exactly as CI runs it (.ci/run calls the same script).
ci:
    bash scripts/test.sh

# Build the browser client into web/pkg (installs the Debian wasm toolchain and
# wasm-bindgen-cli when missing); `just wasm --test` also runs its tests in Chromium.
wasm *ARGS:
    bash scripts/build-wasm.sh {{ARGS}}

# Build the examples.
examples:
    cargo build --examples --locked

# The benchmark suite: lanmesh (encrypted and plaintext) next to nats-server and a raw
# TCP relay on loopback; writes bench/results/bench.{md,json}, quoted in the README.
# `just bench discovery` also runs the mDNS join-time bench below (needs root).
bench *WHAT:
    scripts/ensure-tools.sh nats
    cargo run --release --locked -- bench
    if [ "{{WHAT}}" = discovery ]; then just bench-discovery; fi

# The short suite (under 40 s), rows as JSON on stdout; writes no files.
bench-quick:
    scripts/ensure-tools.sh nats
    cargo run --release --locked -- bench --quick --json

# Benchmarks: join time by mDNS discovery on a namespace LAN (needs root).
# Results go to bench/results/ and are quoted in the README.
bench-discovery:
    cargo test --release --test discovery -- --ignored bench_join_time_by_discovery --nocapture

# 1 GiB file through a router process (release): time, MB/s, the router's peak RSS
# (must stay under 100 MiB) and 64-byte message latency between two other peers meanwhile.
# LANMESH_BLOB_BYTES=N sends another size. The file lives in the temp dir and is deleted.
blob-1g:
    cargo test --release --test blob -- --ignored blob_1g_through_a_router_process --nocapture

# Benchmark: a peer that stops reading, beside a pair moving 1,000,000 messages (router
# RSS and the pair's throughput, alone and beside it). Results in bench/results/.
bench-slow-consumer:
    cargo test --release --test slow_consumer -- --ignored --nocapture

# Every benchmark.
bench: bench-discovery bench-slow-consumer blob-1g

# Regenerate docs/dashboard.png (headless Chromium, three peers and some traffic).
screenshot:
    cargo test --test browser -- --ignored dashboard_screenshot --nocapture

# Fuzz every decoder (nightly + cargo-fuzz) for SECONDS each: records/frames, the
# handshake, decompression/reassembly, blob frames. Seeds in fuzz/corpus/.
fuzz SECONDS="60":
    bash scripts/fuzz.sh {{SECONDS}}
