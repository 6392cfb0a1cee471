#!/usr/bin/env bash
# The serving and drift benchmarks compare honing with LitServe and Evidently, which `make setup`
# does not install (Evidently needs pandas<3; LitServe brings uvicorn[standard]). They live in
# .venv-bench, a venv that sees .venv's packages through a .pth file and adds its own on top.
# usage: bench/run_serve.sh bench/serve_throughput.py [args...]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$here/.venv-bench/bin/python" ]; then
	python3 -m venv "$here/.venv-bench"
	site="$here/.venv-bench/lib/python3.11/site-packages"
	printf '%s\n%s\n' "$here/.venv/lib/python3.11/site-packages" "$here/src" > "$site/honing-main.pth"
	"$here/.venv-bench/bin/pip" install --quiet "litserve==0.2.19" "evidently==0.7.23" "pandas<3"
fi
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=536870912
exec "$here/.venv-bench/bin/python" "$@"
