#!/usr/bin/env bash
# The Python package (crates/lanmesh-py): builds the wheel with maturin, installs it into
# a virtualenv (target/py-venv), and with --test runs its pytest suite against the
# `lanmesh` binary and in-process routers. Everything comes from the package registries
# (PyPI for maturin and pytest); the virtualenv is made when missing.
#   scripts/python.sh [--release] [--test] [-- PYTEST_ARGS...]
# The wheel is built in the workspace's target dir with the dev profile by default, so
# it shares every dependency with the rest of the test suite; --release for benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=dev
bin_dir=target/debug
test=false
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; bin_dir=target/release ;;
    --test) test=true ;;
    --) shift; pytest_args=("$@"); break ;;
    *) echo "python.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

venv=target/py-venv
py=$venv/bin/python
if [ ! -x "$py" ]; then
  python3 -m venv "$venv"
fi
need=()
"$py" -c 'import maturin' 2>/dev/null || need+=(maturin)
"$py" -c 'import pytest' 2>/dev/null || need+=(pytest)
"$py" -c 'import pytest_timeout' 2>/dev/null || need+=(pytest-timeout)
if [ ${#need[@]} -gt 0 ]; then
  "$py" -m pip install --quiet --disable-pip-version-check "${need[@]}"
fi

wheels=target/wheels/$profile
rm -rf "$wheels"
"$venv/bin/maturin" build --locked --profile "$profile" -m crates/lanmesh-py/Cargo.toml \
  --interpreter "$py" --out "$wheels"
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/lanmesh-*.whl

if $test; then
  # The CLI, for the tests of Python and the command line talking to each other.
  cargo build --locked --bin lanmesh $([ "$profile" = release ] && echo --release)
  export LANMESH_BIN="$PWD/$bin_dir/lanmesh"
  "$py" -m pytest crates/lanmesh-py/tests "${pytest_args[@]}"
fi
