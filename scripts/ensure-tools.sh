#!/usr/bin/env bash
# Installs the developer tools the tasks need when they are missing, from the package
# registries only. Safe to run again: it does nothing when everything is there.
#   scripts/ensure-tools.sh [just] [nextest] [iproute2] [chromium]
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
    *)
      echo "ensure-tools: unknown tool $tool" >&2; exit 2 ;;
  esac
done
