# Thin targets over the `minicluster` CLI. Every target works from a fresh clone.
VENV    ?= .venv
PY      := $(VENV)/bin/python
CLI     := $(VENV)/bin/minicluster
CONFIG  ?= config.yaml
# On Linux x86_64 plain `pip install torch` pulls a multi-GB CUDA build; take the CPU
# wheel from a local wheel folder when there is one, else from PyTorch's CPU index.
TORCH_VERSION ?= 2.13.0
TORCH_WHEELS  ?= /opt/wheels

.PHONY: install test lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	@if [ "$$(uname -s)" = "Darwin" ]; then \
		$(PY) -m pip install "torch==$(TORCH_VERSION)"; \
	elif ls $(TORCH_WHEELS)/torch-$(TORCH_VERSION)+cpu-*.whl >/dev/null 2>&1; then \
		$(PY) -m pip install --find-links $(TORCH_WHEELS) "torch==$(TORCH_VERSION)"; \
	else \
		$(PY) -m pip install --index-url https://download.pytorch.org/whl/cpu "torch==$(TORCH_VERSION)"; \
	fi
	$(PY) -m pip install -e '.[dev]'
	touch $@

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
