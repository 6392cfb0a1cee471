#!/usr/bin/env bash
# The search benchmarks on YAHPO Gym's surrogates need yahpo-gym 1.0.2, which pins numpy<2 and
# ConfigSpace<=0.6 (it works with numpy 2 and ConfigSpace 1.x when installed with --no-deps).
# They live in .venv-hpo, an overlay of .venv (bench/_env.sh), so the test environment is never
# changed by a benchmark.
# usage: bench/run_hpo.sh bench/sampler_suite.py --suite yahpo [args...]
set -euo pipefail
source "$(dirname "$0")/_env.sh"
if make_overlay "$here/.venv-hpo"; then
	"$here/.venv-hpo/bin/pip" install --quiet "ConfigSpace==1.2.2" "pandas<3" "onnxruntime>=1.10"
	"$here/.venv-hpo/bin/pip" install --quiet --no-deps "yahpo-gym==1.0.2"
fi
exec "$here/.venv-hpo/bin/python" "$@"
