#!/usr/bin/env bash
# Print a command that runs CPython 3.12 (the dolfinx wheel is cp312-abi3).
# Order: $PYTHON if set, a working python3.12 on PATH, then a pyenv-installed 3.12.
set -euo pipefail
if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; exit 0; fi
if python3.12 -c 'import sys' >/dev/null 2>&1; then command -v python3.12; exit 0; fi
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | sort -V -r); do
    p="$(pyenv root)/versions/$v/bin/python3.12"
    if [[ -x "$p" ]]; then echo "$p"; exit 0; fi
  done
fi
echo "error: Python 3.12 not found; install it or set PYTHON=/path/to/python3.12" >&2
exit 1
