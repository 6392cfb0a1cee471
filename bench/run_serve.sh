#!/usr/bin/env bash
# The serving and drift benchmarks compare honing with LitServe and Evidently, which `make setup`
# does not install (Evidently needs pandas<3; LitServe brings uvicorn[standard]). They live in
# .venv-bench, an overlay of .venv (bench/_env.sh).
# usage: bench/run_serve.sh bench/serve_throughput.py [args...]
set -euo pipefail
source "$(dirname "$0")/_env.sh"
if make_overlay "$here/.venv-bench"; then
	"$here/.venv-bench/bin/pip" install --quiet "litserve==0.2.19" "evidently==0.7.23" "pandas<3"
fi
exec "$here/.venv-bench/bin/python" "$@"
