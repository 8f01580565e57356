# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.prunekit-installed
EXTRAS ?= dev,mnist,bench,transformers,deploy,docs,xgboost,lightgbm,plots,lightning

.PHONY: demo test lint bench docs env clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) scripts/check_env.py
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/prunekit demo --output-dir prunekit-demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts examples

bench: $(STAMP)
	$(PY) benchmarks/trees.py
	$(PY) benchmarks/ensembles.py
	$(PY) benchmarks/nn_sparsity.py
	$(PY) benchmarks/structured.py
	$(PY) benchmarks/oneshot.py
	$(PY) benchmarks/structured_hf.py
	$(PY) benchmarks/structured_zoo.py
	$(PY) benchmarks/compact.py
	$(PY) benchmarks/budget.py
	$(PY) benchmarks/deploy.py

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) build dist *.egg-info prunekit-demo
