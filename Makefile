# The two commands a new user runs on a fresh clone:
#   make demo   -> creates .venv, installs, trains the demo
#   make test   -> creates .venv, installs, runs the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel; CUDA users install their own torch first and skip this pin.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test test-fast parity clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/unidual demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

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
	rm -rf $(VENV) $(PARITY_VENV)
