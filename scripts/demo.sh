#!/usr/bin/env bash
# Run the demo: SQLite-backed, so no system packages are needed (setup skips apt).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-apt
exec .venv/bin/miaohui demo "$@"
