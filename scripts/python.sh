#!/usr/bin/env bash
# The Python package (crates/lanmesh-py): builds the wheel with maturin, installs it into
# a virtualenv (target/py-venv), and with --test runs its pytest suite against the
# `lanmesh` binary and in-process routers. Everything comes from the package registries
# (PyPI for maturin and pytest); the virtualenv is made when missing.
#   scripts/python.sh [--release] [--test] [-- PYTEST_ARGS...]
# The wheel is built in the workspace's target dir with the dev profile by default, so
# it shares every dependency with the rest of the test suite; --release for benchmarks.
#
#   scripts/python.sh --target ARCH [--profile P] [--test]
# builds the abi3 wheel for a Linux board instead (ARCH: aarch64 for
# aarch64-unknown-linux-gnu, or armv7), into target/wheels/TRIPLE/P (profile release
# unless told; cross-ci is the cheap one of scripts/cross.sh), by the route
# scripts/cross.sh builds the `lanmesh` binary with (scripts/cross-env.sh: Debian's
# rustc-web with -Zbuild-std, Debian's cross gcc; installed when missing). No Python of
# the target is needed: an abi3 extension links no libpython and PyO3 takes its
# configuration from the abi3-py39 feature. It then checks the built .so with readelf: the
# target's ELF machine, the module's entry point, no libpython, and which Python C API
# symbols and glibc versions it imports. --test also installs the wheel with pip into Debian's Python for that
# architecture, run under qemu-user (unpacked from apt-get download into target/cross,
# nothing installed system-wide), and runs crates/lanmesh-py/tests/test_board.py: that
# Python joins an x86 router and exchanges messages with an x86 Python peer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf 'python: %s\n' "$*"; }

profile=dev
profile_given=false
bin_dir=target/debug
test=false
arch=""
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; bin_dir=target/release; profile_given=true ;;
    --profile)
      [ $# -ge 2 ] || { say "--profile needs a name" >&2; exit 2; }
      profile="$2"; profile_given=true; shift ;;
    --target)
      [ $# -ge 2 ] || { say "--target needs aarch64 or armv7" >&2; exit 2; }
      arch="$2"; shift ;;
    --test) test=true ;;
    --) shift; pytest_args=("$@"); break ;;
    *) echo "python.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$arch" ] && [ "$profile" != dev ] && [ "$profile" != release ]; then
  say "--profile $profile is for --target builds; the native wheel is dev or --release" >&2
  exit 2
fi

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

# The native wheel, installed into the virtualenv.
build_native() {
  local wheels=target/wheels/$profile
  rm -rf "$wheels"
  "$venv/bin/maturin" build --locked --profile "$profile" -m crates/lanmesh-py/Cargo.toml \
    --interpreter "$py" --out "$wheels"
  "$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/lanmesh-*.whl
}

# The CLI, for the tests of Python and the command line talking to each other.
build_cli() {
  cargo build --locked --bin lanmesh $([ "$profile" = release ] && echo --release)
  export LANMESH_BIN="$PWD/$bin_dir/lanmesh"
}

if [ -z "$arch" ]; then
  build_native
  if $test; then
    build_cli
    "$py" -m pytest crates/lanmesh-py/tests "${pytest_args[@]}"
  fi
  exit 0
fi

# --- A wheel for a Linux board -------------------------------------------------------

source scripts/cross-env.sh
cross_target "$arch" || { say "--target is aarch64 or armv7, not $arch" >&2; exit 2; }
$profile_given || profile=release
if $test; then cross_ensure_tools qemu; else cross_ensure_tools; fi
case "$arch" in
  aarch64) machine=AArch64; debarch=arm64 ;;
  armv7) machine=ARM; debarch=armhf ;;
esac

wheels=target/wheels/$triple/$profile
rm -rf "$wheels"
started=$SECONDS
say "building the wheel for $triple (profile $profile)"
# PYO3_NO_PYTHON: PyO3's build script configures itself from the abi3-py39 feature and
# never asks the host's Python, whose configuration is x86's.
PYO3_NO_PYTHON=1 cross_cargo "$venv/bin/maturin" build --locked --profile "$profile" \
  --target "$triple" -Zbuild-std=std,panic_abort "${cross_ci_profile[@]}" --strip \
  -m crates/lanmesh-py/Cargo.toml --out "$wheels"
wheel=$(ls "$wheels"/lanmesh-*.whl)
say "built $(realpath --relative-to="$ROOT" "$wheel") ($(wc -c <"$wheel") bytes) in $((SECONDS - started)) s"

# The Python C API functions a shared object imports, sorted.
python_imports() {
  "$gnu-readelf" --dyn-syms -W "$1" | awk '$7 == "UND" && $8 ~ /^_?Py/ { sub(/@.*/, "", $8); print $8 }' | sort -u
}

# What readelf says about the wheel's extension module; fails on anything wrong for the
# target or for abi3.
so=$(mktemp -d)
trap 'rm -rf "$so"' EXIT
"$py" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); n = [m for m in z.namelist() if m.endswith(".abi3.so")]; assert len(n) == 1, n; open(sys.argv[2], "wb").write(z.read(n[0])); print(n[0])' \
  "$wheel" "$so/native.so" >"$so/name"
got_machine=$("$gnu-readelf" -h "$so/native.so" | sed -n 's/^ *Machine: *//p')
[ "$got_machine" = "$machine" ] || { say "the .so is for $got_machine, not $machine" >&2; exit 1; }
needed=$("$gnu-readelf" -d "$so/native.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | xargs)
case " $needed " in
  *libpython*) say "the .so links $needed: an abi3 module must not link libpython" >&2; exit 1 ;;
esac
"$gnu-readelf" --dyn-syms -W "$so/native.so" | awk '$7 != "UND" { print $8 }' | grep -x 'PyInit__native' >/dev/null \
  || { say "the .so does not export PyInit__native" >&2; exit 1; }
python_imports "$so/native.so" >"$so/board.syms"
glibc=$("$gnu-readelf" --dyn-syms -W "$so/native.so" | grep -o 'GLIBC_[0-9.]*' | sort -V -u | tail -1)
say "$(cat "$so/name"): ELF $got_machine, exports PyInit__native, needs $needed (no libpython);" \
  "imports $(wc -l <"$so/board.syms") Python C API symbols from the interpreter; newest glibc symbol version $glibc"
$test || exit 0

# --- Debian's Python for the target, under qemu-user ---------------------------------
# apt-get download with a private state directory for the target architecture (the
# machine's own apt configuration is left alone), unpacked into a root for qemu's -L.
board=$BUILD_DIR/python-$debarch
apt_dir=$board/apt
root=$board/root
apt_opts=(-o "APT::Architecture=$debarch" -o "APT::Architectures::=$debarch"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Debug::NoLocking=1)
python_debs=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1 libexpat1 zlib1g libffi8 libssl3)
if [ "$(cat "$board/packages" 2>/dev/null)" != "${python_debs[*]}" ]; then
  say "fetching Debian's python3.11 for $debarch (apt-get download, unpacked into $(realpath -m --relative-to="$ROOT" "$root"))"
  rm -rf "$board"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$root"
  apt-get -qq "${apt_opts[@]}" update
  # (Run as root, apt warns that its sandbox user cannot write here: harmless.)
  (cd "$apt_dir/debs" && apt-get -qq "${apt_opts[@]}" download "${python_debs[@]}" 2>/dev/null)
  for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  echo "${python_debs[*]}" >"$board/packages"
fi
board_python=$board/python3
cat >"$board_python" <<EOF
#!/bin/sh
# Debian's python3.11 for $debarch under $qemu (made by scripts/python.sh --target $arch --test).
exec $qemu -L "$root" "$root/usr/bin/python3.11" "\$@"
EOF
chmod +x "$board_python"

# pip run by the board's Python itself, so the wheel's tags are checked against that
# interpreter and its glibc: pip's own wheel, the one the host Python bundles for venv
# (ensurepip, or Debian's python-wheels), else downloaded from PyPI.
site=$board/site
rm -rf "$site"
pip_wheel=$(ls "$("$py" -c 'import ensurepip, os; print(os.path.dirname(ensurepip.__file__))' 2>/dev/null)"/_bundled/pip-*.whl \
  /usr/share/python-wheels/pip-*.whl 2>/dev/null | head -1 || true)
if [ -z "$pip_wheel" ]; then
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$board/pip" pip
  pip_wheel=$(ls "$board"/pip/pip-*.whl | head -1)
fi
say "installing the wheel into $("$board_python" -c 'import platform, sys; print(f"Python {platform.python_version()} on {platform.machine()}")') with pip"
"$board_python" "$pip_wheel/pip" install --quiet --disable-pip-version-check --no-deps --no-index \
  --target "$site" "$wheel"

# The x86 side of the test: the native wheel in the virtualenv and the CLI.
profile=dev
bin_dir=target/debug
build_native
build_cli
LANMESH_BOARD_PYTHON="$board_python" LANMESH_BOARD_SITE="$site" \
  "$py" -m pytest crates/lanmesh-py/tests/test_board.py "${pytest_args[@]}"
