# The two commands a new user needs: `make demo` (the main job) and `make test`.
# Both create .venv on first use and are quick on a second run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.zhbert-installed
# DeepSpeed compiles its CPU ops once; keep them with the project, not in ~/.cache shared by every venv.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/$(VENV)/torch_extensions

.PHONY: demo test lint clean-data gpu-bundle

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: a loose requirement would pull the newest CUDA build (gigabytes).
	# A GPU user installs their own CUDA torch into .venv before `make`; it is kept.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/zhbert demo

# One pytest-xdist worker per core (xdist >= 3.8 for --no-loadscope-reorder), a test file per worker at a time (its
# module fixtures are built once), the longest files first (tests/conftest.py): in one process the suite kept one of
# the 2 cores idle most of the time.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check zhbert pipelines tests benchmarks

# What the one-call GPU check carries to a machine with no internet (docs/benchmarks.md, "GPU check"):
# wheels for Python 3.12 x86-64, a corpus slice and the sentiment task, in the git-ignored .gpucheck/.
gpu-bundle: $(STAMP)
	$(BIN)/python benchmarks/gpu_bundle.py --out .gpucheck

clean-data:
	rm -rf data runs reports
