# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEEDS ?= 8
# pytest workers: 2 cores on the reference machine; override with `make test WORKERS=4`.
WORKERS ?= 2

BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: venv demo test bench bench-gpu clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/dlcore run mnist1d_mlp --seeds $(SEEDS)

test: venv
	$(BIN)/python -m pytest -q -n $(WORKERS) --durations=15 tests

# The benchmarks also need the `bench` extra (a CPU build of PyTorch for the peers).
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: venv $(BENCH_STAMP)
	for f in benchmarks/*.py; do case $$f in */gpu.py) continue;; esac; echo "== $$f"; $(BIN)/python $$f || exit 1; done

# On a machine with an accelerator (< 8 minutes): one JSON file with all figures.
bench-gpu: venv $(BENCH_STAMP)
	$(BIN)/python benchmarks/gpu.py --json runs/bench_gpu.json

clean:
	rm -rf $(VENV) runs .pytest_cache
