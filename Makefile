# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export FIFTYONE_DATABASE_VALIDATION := false
export FIFTYONE_DO_NOT_TRACK := true

.PHONY: setup run test test-all bench lint clean

setup:
	@bash tools/setup_venv.sh

run: setup
	@[ -d .dvc ] || $(BIN)/dvc init -q
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@$(BIN)/deblurbench leaderboard --print

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "not gpu"

bench: setup
	$(BIN)/python bench/bench_pba.py

lint: setup
	$(BIN)/ruff check src tests

clean:
	rm -rf outputs metrics leaderboard/results.duckdb leaderboard/leaderboard.md
