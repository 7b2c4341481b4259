# The project's commands. `make setup` is a no-op once the venv matches the
# requirement files; `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup test test-unit test-integration test-slow lint demo demo-real demo-real-instruments compare bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

test: setup
	$(PY) -m pytest

test-unit: setup  # no training: about 80 s on 2 cores
	$(PY) -m pytest tests/unit models data_prep recipes bench

test-integration: setup  # tiny training runs, the CLI, torchrun
	$(PY) -m pytest tests/integration

test-slow: setup
	$(PY) -m pytest -m slow

lint: setup
	$(VENV)/bin/ruff check .

demo: setup
	$(PY) recipes/demo.py

# Real recordings with exact sources (Debian packages, fetched, never committed; see README):
# the demo's chain, unchanged, on them.
REAL_SOUNDS ?= results/debian_sounds
demo-real: setup
	$(PY) data_prep/fetch_debian_sounds.py --out $(REAL_SOUNDS) --build
	$(PY) recipes/demo.py --data_folder $(REAL_SOUNDS)/dataset --output_folder results/demo_real

demo-real-instruments: setup  # a second real set: ten instruments over the same backgrounds
	$(PY) data_prep/fetch_debian_sounds.py --out $(REAL_SOUNDS) --set instruments --build
	$(PY) recipes/demo.py --data_folder $(REAL_SOUNDS)/dataset_instruments --output_folder results/demo_real_instruments

compare: setup
	$(PY) recipes/compare.py

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf results .pytest_cache
