# The two commands of the README. Both create the virtual environment on first use.
#   make run    the default pipeline on the mini world (CPU, offline)
#   make test        the test suite (about 8 minutes on 2 cores with the live SLURM tests; BENCHMARKS.md)
#   make test-slow   the full-size and whole-DAG checks marked slow, about 9 minutes
#   make test-all    both in one session (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= 2
export HF_HUB_OFFLINE := 1

.PHONY: run test test-slow test-all dry-run original original-rerun bench clean

$(STAMP): envs/requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r envs/requirements.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) all

dry-run: $(STAMP)
	$(VENV)/bin/snakemake -n --cores $(CORES) all

# One pytest worker per core: the tests pin torch to one thread. A file's tests stay on one worker, so a
# module fixture (a whole DAG, the SLURM run) runs once.
PYTEST := $(VENV)/bin/pytest -q -ra -n $(CORES) --dist loadfile --durations=15

test: $(STAMP)
	$(PYTEST) -m "not slow"

test-slow: $(STAMP)
	$(PYTEST) -m slow

# Both, as CI runs them: one pytest session, so the two workers share out all the files at once.
test-all: $(STAMP)
	$(PYTEST)

# The original-model row (200 images per prompt): results/miniworld/original.{csv,md}
original: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) original_table --configfile configs/miniworld_original.yaml

# Retrain the mini world from scratch (about 1 h on 2 cores) and write the same table for the new
# weights: results/miniworld/original_rerun.{csv,md}
RERUN := outputs/miniworld_original_rerun
original-rerun: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) pretrain
	$(VENV)/bin/snakemake --cores $(CORES) $(RERUN)/report/per_prompt.csv --configfile configs/miniworld_original.yaml \
		--config out_dir=$(RERUN) "miniworld={weights: outputs/miniworld/pretrain}"
	$(PY) stages/original_table.py --per-prompt $(RERUN)/report/per_prompt.csv --weights outputs/miniworld/pretrain \
		--out-csv results/miniworld/original_rerun.csv --out-md results/miniworld/original_rerun.md --command "make original-rerun" --seed 0

# Benchmarks (idle machine; ~15 min): results/bench/*.json and BENCHMARKS.md
bench: $(STAMP)
	$(PY) scripts/bench.py
	$(PY) scripts/bench.py --only e2e
