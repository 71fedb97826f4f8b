# Set-up and everyday commands. Every target creates .venv on first use and installs the project
# from its own files, with the CPU pins in constraints/cpu.txt (torch 2.13.0 CPU wheel).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints/cpu.txt

.PHONY: venv run test test-full lint format bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,hf]'
	@touch $(STAMP)

venv: $(STAMP)

## the main job on its embedded default (simulated agent, shipped outcomes; < 1 min on a CPU)
run: $(STAMP)
	$(BIN)/utility-jax compute $(ARGS)

## the fast tier (CI), a file per worker (pytest-xdist) on up to 4 cores
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -n auto --maxprocesses=4 --dist loadfile $(ARGS)

## every test, slow ones included
test-full: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check utility_jax experiments tests benchmarks
	$(BIN)/ruff format --check utility_jax experiments tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format utility_jax experiments tests benchmarks
	$(BIN)/ruff check --fix utility_jax experiments tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fit.py

clean:
	rm -rf $(VENV) logs .pytest_cache
