#!/usr/bin/env bash
# The search benchmarks on YAHPO Gym's surrogates need yahpo-gym 1.0.2, which pins numpy<2 and
# ConfigSpace<=0.6 (it works with numpy 2 and ConfigSpace 1.x when installed with --no-deps).
# They live in .venv-hpo, a venv that sees .venv's packages through a .pth file and adds its own
# on top, so the test environment (.venv) is never changed by a benchmark.
# usage: bench/run_hpo.sh bench/sampler_suite.py --suite yahpo [args...]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$here/.venv-hpo/bin/python" ]; then
	python3 -m venv "$here/.venv-hpo"
	site="$here/.venv-hpo/lib/python3.11/site-packages"
	printf '%s\n%s\n' "$here/.venv/lib/python3.11/site-packages" "$here/src" > "$site/honing-main.pth"
	"$here/.venv-hpo/bin/pip" install --quiet "ConfigSpace==1.2.2" "pandas<3" "onnxruntime>=1.10"
	"$here/.venv-hpo/bin/pip" install --quiet --no-deps "yahpo-gym==1.0.2"
fi
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=536870912
exec "$here/.venv-hpo/bin/python" "$@"
