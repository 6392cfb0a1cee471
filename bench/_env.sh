# Sourced by the bench/run*.sh scripts: the allocator settings that make timings hold still, and
# make_overlay, which creates a venv that sees .venv's packages (and src/) through a .pth file so
# a benchmark can add packages of its own without changing the test environment.
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=536870912
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# make_overlay DIR: DIR becomes such a venv unless it already is one (returns 1 then)
make_overlay() {
	[ -x "$1/bin/python" ] && return 1
	python3 -m venv "$1"
	printf '%s\n%s\n' "$here/.venv/lib/python3.11/site-packages" "$here/src" > "$1/lib/python3.11/site-packages/honing-main.pth"
}
