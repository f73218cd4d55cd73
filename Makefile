# The two commands a newcomer needs: `make run` and `make test`.
# Each creates .venv/ when missing and (re)installs the project when its inputs change (the protos, or
# the engine sources that the install compiles with mypyc).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml setup.py $(wildcard proto/*.proto) $(wildcard tradsys/engine/*.py)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tradsys daemon start

test: $(STAMP)
	bash scripts/test-deps.sh
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) build *.egg-info *.so tradsys/engine/*.so
