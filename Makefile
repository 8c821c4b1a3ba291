# Thin targets over the `minicluster` CLI. Every target works from a fresh clone.
VENV    ?= .venv
PY      := $(VENV)/bin/python
CLI     := $(VENV)/bin/minicluster
PYTEST  := $(VENV)/bin/pytest
CONFIG  ?= config.yaml
# The one pinned torch version (pyproject.toml holds the range the package admits;
# tests/test_packaging.py checks that the range admits this pin). On Linux x86_64 plain
# `pip install torch` pulls a multi-GB CUDA build; take the CPU wheel from a local wheel
# folder when there is one, else from PyTorch's CPU index.
TORCH_VERSION ?= 2.13.0
TORCH_WHEELS  ?= /opt/wheels

.PHONY: install config check integration e2e test lint system-packages

install: $(VENV)/.installed

# The control machine's venv: the package with its `control` extra (deploy, render, plots)
# and `dev` (tests, ruff). The Minis get the bare wheel, without extras.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	@if [ "$$(uname -s)" = "Darwin" ]; then \
		$(PY) -m pip install "torch==$(TORCH_VERSION)"; \
	elif ls $(TORCH_WHEELS)/torch-$(TORCH_VERSION)+cpu-*.whl >/dev/null 2>&1; then \
		$(PY) -m pip install --find-links $(TORCH_WHEELS) "torch==$(TORCH_VERSION)"; \
	else \
		$(PY) -m pip install --index-url https://download.pytorch.org/whl/cpu "torch==$(TORCH_VERSION)"; \
	fi
	$(PY) -m pip install -e '.[control,dev]'
	touch $@

# `make config`: your own config.yaml, copied from config.example.yaml (git ignores it).
# FORCE=1 replaces an existing one.
FORCE ?=
config: install
	$(CLI) config init $(if $(filter 1 yes true,$(FORCE)),--force) $(CONFIG)

# Targets that read $(CONFIG) depend on it: when it is missing, this says how to create it.
$(CONFIG):
	@echo "$(CONFIG) is missing: run \`make config\`, then set your Minis' addresses in it" >&2
	@exit 2

# --- tests, in tiers ------------------------------------------------------------------------
# `make check`: the fast tier (unit, golden, promtool, drift, render); no root, no network
# namespaces; runs on macOS and on Linux as any user. `make integration`: real Prometheus,
# Alertmanager, sshd and torchrun on loopback. `make e2e`: root, network namespaces, the two
# simulated Minis. `make test`: lint and every tier, what CI runs.
# PYTEST_FLAGS passes options, e.g. PYTEST_FLAGS="-x -k drift".
PYTEST_FLAGS ?=

# The fast tier's two static checkers ship with Prometheus and Alertmanager; `make check`
# installs them when missing and it can (Homebrew, root or sudo), else says how.
CHECKERS = promtool and amtool: brew install prometheus alertmanager (macOS), or apt-get install prometheus prometheus-alertmanager (Debian)

check: install
	@bash tests/system-packages.sh --checkers || { echo "make check needs $(CHECKERS)" >&2; exit 2; }
	$(PYTEST) -m "not integration and not e2e" $(PYTEST_FLAGS)

integration: install
	$(PYTEST) -m integration $(PYTEST_FLAGS)

e2e: install
	$(PYTEST) -m e2e $(PYTEST_FLAGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The programs the tiers run (promtool, Prometheus, sshd, iproute2, ...), installed when
# missing: apt-get on Debian/Ubuntu (root or sudo), Homebrew on macOS.
system-packages:
	@bash tests/system-packages.sh

# On macOS the e2e tier (network namespaces) cannot run: `make test` says so and runs the rest.
ifeq ($(shell uname -s),Darwin)
test: system-packages lint check integration
	@echo "make test: the e2e tier needs Linux (network namespaces and root); run it on a Linux machine"
else
test: system-packages lint check integration e2e
endif

# --- this machine: demo and bench ----------------------------------------------------------
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

# World size 1 against 2 on this machine, ranks pinned one per core: runs/bench-<time>/
# report.md and plots; with $(CONFIG) present, also across its nodes (nodes/report.md), and
# LOCAL=1 skips that. BENCH_FLAGS="--steps 50 --out DIR" for a shorter run or another
# folder; BENCH_FLAGS=--allreduce for the all-reduce sweep (4 KB to 256 MB) against the link.
bench: install
	$(CLI) bench $(if $(IS_LOCAL),,$(if $(wildcard $(CONFIG)),--config $(CONFIG))) $(BENCH_FLAGS)

# --- jobs -----------------------------------------------------------------------------------
# `make run-job`: one training job on every node of $(CONFIG), with live progress, a merged
# log in logs/<job_id>.log and a summary in runs/<job_id>.json. LOCAL=1 runs it on this
# machine (the built-in local profile, no ssh). STEPS=N sets the step count; JOB_FLAGS
# passes any other option (see `minicluster run-job --help`), e.g. JOB_FLAGS="--batch-size 64".
# `make logs JOB=<job_id>` fetches and re-merges a job's per-rank logs from every node;
# `make status` is one screen from Prometheus.
.PHONY: run-job stop status top logs
CMD       ?=
LOCAL     ?=
STEPS     ?=
JOB       ?=
JOB_FLAGS ?=
IS_LOCAL   = $(filter 1 yes true,$(LOCAL))
WHERE      = $(if $(IS_LOCAL),--local,--config $(CONFIG))
# The config file a target needs: none with LOCAL=1.
NEEDS_CONFIG = $(if $(IS_LOCAL),,$(CONFIG))

# CMD="python train.py --epochs 3" runs your own program, the current folder shipped to every
# node; `make stop JOB=<job_id>` stops a job on every node by its recorded PIDs.
run-job: install $(NEEDS_CONFIG)
	$(CLI) run-job $(WHERE) $(if $(STEPS),--steps $(STEPS)) $(JOB_FLAGS) $(if $(CMD),-- $(CMD))

stop: install $(NEEDS_CONFIG)
	@test -n "$(JOB)" || { echo "usage: make stop JOB=<job_id> (the job ids are in runs/)"; exit 2; }
	$(CLI) stop $(JOB) $(WHERE)

status: install $(NEEDS_CONFIG)
	$(CLI) status $(WHERE)

# `make top`: the live view of nodes, job and alerts (q quits); INTERVAL=5 for 5 s refreshes.
INTERVAL ?=
top: install $(NEEDS_CONFIG)
	$(CLI) top $(WHERE) $(if $(INTERVAL),--interval $(INTERVAL))

logs: install $(NEEDS_CONFIG)
	@test -n "$(JOB)" || { echo "usage: make logs JOB=<job_id> (the job ids are in runs/)"; exit 2; }
	$(CLI) logs $(JOB) $(WHERE)

# --- deploy ---------------------------------------------------------------------------------
# `make deploy`: the stack onto every node of $(CONFIG) over ssh (pyinfra); a second run
# changes nothing. `make deploy DRY=1` only shows what would change. `make undeploy` boots
# out the services and removes what deploy installed, keeping data and logs (PURGE=1 removes
# them too); NODE=name undeploys that node only. `make doctor` checks every node and exits non-zero if anything fails.
.PHONY: deploy undeploy doctor
DRY   ?=
PURGE ?=

deploy: install $(CONFIG)
	$(CLI) deploy --config $(CONFIG) $(if $(filter 1 yes true,$(DRY)),--dry-run)

undeploy: install $(CONFIG)
	$(CLI) undeploy --config $(CONFIG) $(if $(filter 1 yes true,$(PURGE)),--purge) $(if $(NODE),--node $(NODE))

doctor: install $(CONFIG)
	$(CLI) doctor --config $(CONFIG)
