# honing: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FMNIST ?= /usr/share/datasets/fashion-mnist
# Single-threaded by default: torch with 2 threads collapses when another process shares the cores.
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test bench clean data

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the local CPU wheel (an unpinned torch pulls several GB of CUDA packages)
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# Debian's Fashion-MNIST (IDX files) for the image examples, tests and benchmarks.
data:
	@if [ -d "$(FMNIST)" ]; then \
		true; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "installing dataset-fashion-mnist (Debian) into $(FMNIST)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
		echo "note: $(FMNIST) is absent and this user cannot install it;"; \
		echo "      run 'sudo apt-get install dataset-fashion-mnist' for the Fashion-MNIST examples and tests."; \
	fi

demo: setup
	$(BIN)/python examples/train_digits.py

test: setup
	$(BIN)/python -m pytest tests

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs bench/out .pytest_cache
