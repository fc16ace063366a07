#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, types, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/setup.sh --dev
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"
ruff check sbc tests bench ops
ruff format --check sbc tests bench ops
echo "== mypy (strict)"
mypy sbc
echo "== import direction"
python ops/check_imports.py
echo "== pytest"
# pytest exits 5 when it collects no test: that fails the run, as it should.
python -m pytest -q "$@"
