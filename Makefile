# One entry point for set-up, tests and the demo. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv test demo clean

$(BIN)/r1omni: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: 2.13.0 is a local CPU wheel; a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BIN)/r1omni

venv: $(BIN)/r1omni

test: venv
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

demo: venv
	$(BIN)/r1omni demo -o demo_out

clean:
	rm -rf $(VENV) demo_out .pytest_cache
