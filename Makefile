# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export FIFTYONE_DATABASE_VALIDATION := false
export FIFTYONE_DO_NOT_TRACK := true

# Test workers: most tests drive the real CLI in subprocesses, CPU-bound, so one per core
# (2 on the CI machines); --dist loadfile keeps each file's module fixtures in one worker.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: setup browser run test test-all bench lint clean

setup:
	@bash tools/setup_venv.sh

# Headless Chromium for the leaderboard's browser tests (apt). Without root or network the
# browser tests skip with a reason, except under CI=true, where they fail.
browser:
	@bash tools/install_chromium.sh || echo "[setup] warning: chromium not installed; browser tests will skip (fail under CI=true)"

run: setup
	@[ -d .dvc ] || $(BIN)/dvc init -q
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@$(BIN)/deblurbench leaderboard --print

test: setup browser
	$(PYTEST)

test-all: setup browser
	$(PYTEST) -m "not gpu"

# Speed, as ratios against a baseline measured in the same run (never asserted in tests).
bench: setup
	$(BIN)/python bench/bench_pba.py
	$(BIN)/python bench/bench_scoring.py
	$(BIN)/python bench/bench_batching.py

lint: setup
	$(BIN)/ruff check src tests

clean:
	rm -rf outputs metrics leaderboard/results.duckdb leaderboard/leaderboard.md
