# The two commands a newcomer runs (see README): `make demo` and `make test`.
# Both create .venv and install everything first: torch's CPU build, then the pinned
# google-vizier stack and integrations (Optuna, Ray Tune, PostgreSQL), then this project.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install demo test bench-regression bench-bbob clean

$(VENV)/.installed: pyproject.toml requirements/stack.txt requirements/integrations.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements/stack.txt -r requirements/integrations.txt
	$(PY) -m pip install -q -e '.[dev,all]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/vizier-omnipred demo

test: install
	$(PY) -m pytest -q tests

bench-regression: install
	$(PY) -m benchmarks.regression

bench-bbob: install
	$(PY) -m benchmarks.bbob

clean:
	rm -rf $(VENV) build *.egg-info
