#!/usr/bin/env bash
# Idempotent environment setup for miaohui. Run it or source it:
#   bash scripts/setup.sh            # system packages (postgres, redis, chromium, CJK fonts) + .venv
#   bash scripts/setup.sh --no-apt   # .venv only (what the SQLite demo needs); same as MIAOHUI_SKIP_APT=1
# Everything runs inside a subshell function, so sourcing it never leaks `set -e`
# or `cd` into the caller; its exit status is the status of the setup.

_miaohui_setup() (
    set -euo pipefail
    cd "$(dirname "${BASH_SOURCE[0]}")/.."

    local skip_apt="${MIAOHUI_SKIP_APT:-0}" arg
    for arg in "$@"; do
        case "$arg" in
            --no-apt) skip_apt=1 ;;
            --apt) skip_apt=0 ;;
            *) echo "setup: unknown argument: $arg" >&2; return 2 ;;
        esac
    done

    say() { echo "[setup] $*"; }

    apt_install() {
        local sudo=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null || { say "need root or sudo to apt-get install: $*" >&2; return 1; }
            sudo=(sudo)
        fi
        say "apt-get install $*"
        export DEBIAN_FRONTEND=noninteractive
        # `apt-get update` is only paid for when something is actually missing.
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    }

    # 1. System services for the test suite (the demo runs on SQLite and skips this).
    if [ "$skip_apt" != 1 ]; then
        local missing=()
        command -v redis-server >/dev/null || missing+=(redis-server)
        compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
        command -v chromium >/dev/null || missing+=(chromium)
        dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'ok installed' \
            || missing+=(fonts-noto-cjk)  # Chinese glyphs in browser screenshots/PDFs
        if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; else say "system packages present"; fi
    fi

    # 2. Virtualenv. A half-created .venv (e.g. Debian python without python3-venv) is discarded.
    if ! .venv/bin/python -c 'import sys' 2>/dev/null; then
        local py
        py="$(command -v python3.11 || command -v python3 || true)"
        if [ -z "$py" ] || ! "$py" -m venv .venv 2>/dev/null; then
            rm -rf .venv
            # A fresh Debian 12 has no python3 / venv module; this is the only apt use allowed with --no-apt,
            # because without it nothing can run at all.
            apt_install python3 python3-venv
            py="$(command -v python3.11 || command -v python3)"
            "$py" -m venv .venv
        fi
        say "created .venv with $("$py" -V)"
    fi

    # 3. Project install, re-done only when pyproject.toml changed since the last successful install.
    local stamp=.venv/.installed-stamp
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "pip install -e '.[dev]'"
        PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q --no-input -e '.[dev]'
        touch "$stamp"
    else
        say "python deps up to date"
    fi
)

_miaohui_setup "$@"
