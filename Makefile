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

# --- the newcomer's path (issue 8) --------------------------------------------------------
# `make demo`: the whole stack and a 2-rank job on this machine; it keeps running until
# `make demo-stop`. `make demo ONCE=1` stops it at the end and exits with the job's status.
# DEMO_FLAGS passes more options, e.g. DEMO_FLAGS="--steps 100".
.PHONY: demo demo-stop bench
ONCE       ?=
DEMO_FLAGS ?=
BENCH_FLAGS ?=

demo: install
	$(CLI) demo $(if $(filter 1 yes true,$(ONCE)),--once) $(DEMO_FLAGS)

demo-stop: install
	$(CLI) demo --stop

# World size 1 against 2 on this machine: runs/bench-<time>/report.md and plots.
# BENCH_FLAGS="--steps 50 --out DIR" for a shorter run or another folder.
bench: install
	$(CLI) bench $(BENCH_FLAGS)

# --- jobs (issue 7) -------------------------------------------------------------------------
# `make run-job`: one training job on every node of $(CONFIG), with live progress, a merged
# log in logs/<job_id>.log and a summary in runs/<job_id>.json. LOCAL=1 runs it on this
# machine (the built-in local profile, no ssh). STEPS=N sets the step count; JOB_FLAGS
# passes any other option (see `minicluster run-job --help`), e.g. JOB_FLAGS="--batch-size 64".
# `make logs JOB=<job_id>` fetches and re-merges a job's per-rank logs from every node;
# `make status` is one screen from Prometheus; `make e2e` runs the two-simulated-host tests.
.PHONY: run-job status logs e2e
LOCAL     ?=
STEPS     ?=
JOB       ?=
JOB_FLAGS ?=
WHERE     = $(if $(filter 1 yes true,$(LOCAL)),--local,--config $(CONFIG))

run-job: install
	$(CLI) run-job $(WHERE) $(if $(STEPS),--steps $(STEPS)) $(JOB_FLAGS)

status: install
	$(CLI) status $(WHERE)

logs: install
	@test -n "$(JOB)" || { echo "usage: make logs JOB=<job_id> (the job ids are in runs/)"; exit 2; }
	$(CLI) logs $(JOB) $(WHERE)

e2e: install
	$(VENV)/bin/pytest -m e2e tests

# --- deploy (issue 6) -----------------------------------------------------------------------
# `make deploy`: the stack onto every node of $(CONFIG) over ssh (pyinfra); a second run
# changes nothing. `make deploy DRY=1` only shows what would change. `make undeploy` boots
# out the services and removes what deploy installed, keeping data and logs (PURGE=1 removes
# them too). `make doctor` checks every node and exits non-zero if anything fails.
.PHONY: deploy undeploy doctor
DRY   ?=
PURGE ?=

deploy: install
	$(CLI) deploy --config $(CONFIG) $(if $(filter 1 yes true,$(DRY)),--dry-run)

undeploy: install
	$(CLI) undeploy --config $(CONFIG) $(if $(filter 1 yes true,$(PURGE)),--purge)

doctor: install
	$(CLI) doctor --config $(CONFIG)
