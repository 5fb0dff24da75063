# microstrain — `make test` and `make demo` create .venv (Python 3.12) and install everything.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install test test-fast lint demo model serve bench clean

help:
	@echo "make test    lint, type-check, layering check and the whole test suite"
	@echo "make demo    the pipeline end to end on small defaults"
	@echo "make model   reproduce models/default (long: see README); MODEL=periodic: models/periodic"
	@echo "make serve   REST service on the shipped default model (port 3000)"
	@echo "make bench   benchmark tables (solver, training, surrogate, serving)"

install: $(STAMP)

# Reinstall when pyproject.toml changes; a venv of another Python is replaced.
$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then \
		rm -rf $(VENV); PYBIN=$$(scripts/find_python.sh) && $$PYBIN -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

model: $(STAMP)
	bash scripts/make_default_model.sh

serve: $(STAMP)
	$(BIN)/microstrain serve

# Each script prints its table; the serving and surrogate ones use the shipped model.
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_solver.py --ks 1,2,4,8
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_surrogate.py --arch res-unet
	$(BIN)/python benchmarks/bench_serving.py --model models/default --requests 300
	$(BIN)/python benchmarks/bench_serving_models.py
	$(BIN)/python benchmarks/bench_serving_profile.py --profile --batching

clean:
	rm -rf runs results .pytest_cache .mypy_cache .ruff_cache
