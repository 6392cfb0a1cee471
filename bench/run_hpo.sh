#!/usr/bin/env bash
# The search benchmarks on YAHPO Gym's surrogates need yahpo-gym 1.0.2, which pins numpy<2 and
# ConfigSpace<=0.6 (it works with numpy 2 and ConfigSpace 1.x when installed with --no-deps).
# They live in .venv-hpo, an overlay of .venv (bench/_env.sh), so the test environment is never
# changed by a benchmark.
# usage: bench/run_hpo.sh bench/sampler_suite.py --suite yahpo [args...]
#        bench/run_hpo.sh --external     (once: adds SMAC3, DEHB and HEBO, the outside contenders)
set -euo pipefail
source "$(dirname "$0")/_env.sh"
if make_overlay "$here/.venv-hpo"; then
	"$here/.venv-hpo/bin/pip" install --quiet "ConfigSpace==1.2.2" "pandas<3" "onnxruntime>=1.10"
	"$here/.venv-hpo/bin/pip" install --quiet --no-deps "yahpo-gym==1.0.2"
fi
if [ "${1:-}" = "--external" ]; then
	pip="$here/.venv-hpo/bin/pip"
	"$pip" install --quiet "smac==2.4.1" "dehb==0.1.2"
	# DEHB pulls numpy 1.26 and pyarrow into the overlay, where they would shadow .venv's numpy 2
	"$pip" uninstall --quiet -y numpy pyarrow
	# HEBO 0.3.6's metadata pins numpy<1.25 and pymoo==0.6.0, and pip's resolver does not end on
	# it: it goes in without its pins, its imports named one by one
	"$pip" install --quiet --no-deps "hebo==0.3.6" pymoo gpytorch linear_operator jaxtyping GPy paramz catboost \
		disjoint-set moocore cffi pycparser platformdirs alive_progress matplotlib pillow cycler kiwisolver fonttools
	"$here/.venv-hpo/bin/python" -c "import smac, dehb; from hebo.optimizers.hebo import HEBO; print('SMAC3, DEHB and HEBO import')"
	exit 0
fi
exec "$here/.venv-hpo/bin/python" "$@"
