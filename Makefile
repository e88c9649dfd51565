# Two commands do all the set-up on a fresh machine:
#   make serve   -- create .venv, install, serve the four bundled models on :8000
#   make test    -- create .venv, install with test extras, run the whole test suite
# torch is pinned (torch==2.13.0). Where PyPI's default torch wheel would be a CUDA build,
# pass the CPU index:  make serve TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX ?=
PIP = $(VENV)/bin/pip
TORCH_FLAGS = $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: serve test lint install clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_FLAGS) "torch==2.13.0"
	$(PIP) install -q $(TORCH_FLAGS) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

serve: $(VENV)/.installed
	$(VENV)/bin/python -m app

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
