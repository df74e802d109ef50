# Sourced by the kidbench scripts: points the build at the libtorch that scripts/setup.sh installed.
# Usage: source scripts/env.sh   (runs setup.sh first; it is cached and idempotent)
_kb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_kb_line="$("$_kb_root/scripts/setup.sh" | tail -n 1)" || return 1 2>/dev/null || exit 1
export LIBTORCH="${_kb_line#LIBTORCH=}"
unset _kb_root _kb_line
