# The two commands a new user runs on a fresh clone:
#   make demo   -> creates .venv, installs, trains the demo
#   make test   -> creates .venv, installs, runs ruff, mypy and the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel; CUDA users install their own torch first and skip this pin.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo lint test test-fast test-pythons parity clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/unidual demo

# Lint and types first (seconds), so a style or type error fails before the long suite; config in pyproject.toml.
LINT_PATHS := unidual tests benchmarks hubconf.py
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# The fast tests on the lowest and highest supported Pythons besides 3.11: `make test-pythons`, or
# `make test-py3.10` / `make test-py3.13` (pyenv's interpreters on these machines; a version absent is
# skipped with a notice). The CPU wheel on this machine's disk is for Python 3.11 only, so these venvs
# take PyPI's torch 2.13.0 (a CUDA build, ~5 GB each; it runs on the CPU all the same).
OTHER_PYTHONS ?= 3.10 3.13
test-pythons: $(addprefix test-py,$(OTHER_PYTHONS))

test-py%:
	@py=$$(ls -d $$HOME/.pyenv/versions/$*.*/bin/python 2>/dev/null | sort -V | tail -1); \
	py=$${py:-$$(command -v python$* || true)}; \
	if [ -z "$$py" ]; then echo "make test-py$*: no Python $* on this machine: skipped"; exit 0; fi; \
	if [ ! -f $(VENV)-py$*/.installed ]; then \
	  $$py -m venv $(VENV)-py$* && \
	  $(VENV)-py$*/bin/python -m pip install -q --upgrade pip && \
	  $(VENV)-py$*/bin/python -m pip install -q $(TORCH_PIN) && \
	  $(VENV)-py$*/bin/python -m pip install -q -e '.[dev]' && \
	  touch $(VENV)-py$*/.installed || exit 1; \
	fi; \
	echo "make test-py$*: $$($(VENV)-py$*/bin/python --version), fast tests"; \
	$(VENV)-py$*/bin/python -m pytest -q -m "not slow"

# Optional torchvision parity check: its own 5.5 GB environment (torch 2.14.1 +
# torchvision 0.29.1); torchvision is never a runtime dependency of unidual.
PARITY_VENV ?= .venv-parity
$(PARITY_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PARITY_VENV)
	$(PARITY_VENV)/bin/python -m pip install -q --upgrade pip
	$(PARITY_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PARITY_VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $@

parity: $(PARITY_VENV)/.installed
	$(PARITY_VENV)/bin/python -m pytest -q -m parity tests/parity

clean:
	rm -rf $(VENV) $(PARITY_VENV) $(VENV)-py*
