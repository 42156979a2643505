# One entry point for set-up, tests and the demo. `make test` is what CI runs (through .ci/run).
# Installs go through requirements.lock (exact versions the suite was verified with, each with the sha256
# of its release's files: installed with --require-hashes); `make lock` regenerates it from the newest
# releases pyproject.toml allows, `make test-latest` shows the drift.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
EXTRAS := test,bench,asr
PIP := pip==26.3
# torch first: 2.13.0 is a local CPU wheel; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: venv test demo lock test-latest clean

$(BIN)/r1omni: pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(PIP)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(BIN)/r1omni

venv: $(BIN)/r1omni

test: venv
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

demo: venv
	$(BIN)/r1omni demo -o demo_out

# Resolve the newest versions the ranges in pyproject.toml allow, in a throw-away venv, pin them and
# hash every file of each pinned release (tools/lock_hashes.py: PyPI's and pip's configured indexes').
# Run the suite on the result (`make test`) before committing it. To hash a lock edited by hand
# (versions kept): python tools/lock_hashes.py requirements.lock.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet $(PIP) $(TORCH)
	.venv-lock/bin/pip install --quiet -e '.[$(EXTRAS)]'
	{ echo "# Exact versions of the .[$(EXTRAS)] environment, made by 'make lock' on $$(date -u +%F) with $$(.venv-lock/bin/python -V)."; \
	  echo "# torch ($(TORCH)) is installed before this file and is not listed; the project itself neither."; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -viE '^(torch|r1omni)=='; } > $(LOCK).tmp
	.venv-lock/bin/python tools/lock_hashes.py $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .venv-lock

# The whole suite on the newest releases the ranges allow (no lock), after listing what differs from it.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet $(PIP) $(TORCH)
	# A fresh venv: pip takes the newest allowed release of everything not yet installed; torch stays 2.13.0.
	.venv-latest/bin/pip install --quiet -e '.[$(EXTRAS)]'
	.venv-latest/bin/python tools/lock_drift.py $(LOCK)
	OMP_NUM_THREADS=1 .venv-latest/bin/python -m pytest -q

clean:
	rm -rf $(VENV) .venv-lock .venv-latest demo_out .pytest_cache
