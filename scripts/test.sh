#!/usr/bin/env bash
# Lint + test suite. Tests start their own postgres/redis (tests/plugins/services.py)
# and drive chromium, so setup installs those from apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --apt
# The training extra (scikit-learn): tests check the trainers' helpers, so nothing is skipped.
.venv/bin/python -c "import sklearn" 2>/dev/null \
    || PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q --no-input -e '.[dev,train]'

# Lint whichever of these source dirs exist; ruff errors out on a missing path.
lint_dirs=()
for d in src tests bench; do [ -d "$d" ] && lint_dirs+=("$d"); done
ruff_rc=0
.venv/bin/ruff check "${lint_dirs[@]}" || ruff_rc=$?

# Run pytest even when lint failed, so one CI run reports both.
pytest_rc=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" || pytest_rc=$?

# pytest's exit code wins; 5 ("no tests collected") is non-zero and therefore a failure as-is.
# If tests passed but lint did not, still fail.
if [ "$pytest_rc" -ne 0 ]; then
    [ "$pytest_rc" -eq 5 ] && echo "[test] pytest collected no tests - treating as failure" >&2
    exit "$pytest_rc"
fi
if [ "$ruff_rc" -ne 0 ]; then echo "[test] ruff check failed" >&2; exit 1; fi
