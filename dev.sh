#!/usr/bin/env bash
# GP Photo Bot developer entry point.
#   bash dev.sh demo          set everything up, then play the whole journey on a throwaway homeserver
#   bash dev.sh test [args]   set everything up, then lint, type-check and run the whole test suite
#   bash dev.sh setup         only install (the bot's .venv and the test homeserver's .venv-synapse)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
SYNAPSE_VERSION="1.163.2"   # the homeserver the end-to-end tests and the demo run against

quiet_pip() {
    # This workplace's pip configuration names local mirrors that may be absent; hide that noise only.
    "$@" 2> >(grep -v "WARNING: Location 'file:" >&2)
}

setup() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "GP Photo Bot needs Python 3.11 or newer (found: $("$PYTHON" --version))." >&2; exit 1; }
    local stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "Installing GP Photo Bot and its test tools into .venv ..."
        [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
        quiet_pip .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        quiet_pip .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
        rm -f .venv/.installed-* && touch "$stamp"
    fi
    local synapse_stamp=".venv-synapse/.installed-$SYNAPSE_VERSION"
    if [ ! -f "$synapse_stamp" ]; then
        echo "Installing the throwaway test homeserver (Synapse $SYNAPSE_VERSION) into .venv-synapse ..."
        [ -x .venv-synapse/bin/python ] || "$PYTHON" -m venv .venv-synapse
        quiet_pip .venv-synapse/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        quiet_pip .venv-synapse/bin/python -m pip install --quiet --disable-pip-version-check \
            "matrix-synapse==$SYNAPSE_VERSION"
        touch "$synapse_stamp"
    fi
}

case "${1:-}" in
    setup)
        setup
        ;;
    demo)
        setup
        exec .venv/bin/photobot demo "${@:2}"
        ;;
    test)
        setup
        echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
        echo "== mypy"; .venv/bin/mypy
        echo "== pytest"; exec .venv/bin/python -m pytest "${@:2}"
        ;;
    *)
        sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
