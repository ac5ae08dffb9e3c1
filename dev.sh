#!/usr/bin/env bash
# GP Photo Bot developer entry point.
#   bash dev.sh demo          set everything up, then play the whole journey on a throwaway homeserver
#   bash dev.sh test [args]   set everything up, then lint, type-check and run the whole test suite
#   bash dev.sh setup         only install (the bot's .venv and the test homeserver's .venv-synapse)
#   bash dev.sh lock          re-resolve requirements.lock and requirements-dev.lock after editing pyproject.toml
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
SYNAPSE_VERSION="1.163.2"   # the homeserver the end-to-end tests and the demo run against
UV_VERSION="0.13.8"         # the tool that writes the lock files (only `dev.sh lock` needs it)

quiet_pip() {
    # This workplace's pip configuration names local mirrors that may be absent; hide that noise only.
    "$@" 2> >(grep -v "WARNING: Location 'file:" >&2)
}

pip_install() {  # pip_install VENV ARGS...: quiet, no version check
    local venv="$1"; shift
    quiet_pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

check_python() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "GP Photo Bot needs Python 3.11 or newer (found: $("$PYTHON" --version))." >&2; exit 1; }
}

setup() {
    check_python
    # Every dependency, transitive ones included, comes from the lock file with its hash; the project
    # itself is then installed without letting pip resolve anything else.
    local stamp=".venv/.installed-$(cat pyproject.toml requirements-dev.lock | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "Installing GP Photo Bot and its test tools into .venv (from requirements-dev.lock) ..."
        [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
        pip_install .venv --require-hashes -r requirements-dev.lock
        pip_install .venv --no-deps -e .
        rm -f .venv/.installed-* && touch "$stamp"
    fi
    local synapse_stamp=".venv-synapse/.installed-$SYNAPSE_VERSION"
    if [ ! -f "$synapse_stamp" ]; then
        echo "Installing the throwaway test homeserver (Synapse $SYNAPSE_VERSION) into .venv-synapse ..."
        [ -x .venv-synapse/bin/python ] || "$PYTHON" -m venv .venv-synapse
        pip_install .venv-synapse --upgrade pip
        pip_install .venv-synapse "matrix-synapse==$SYNAPSE_VERSION"
        touch "$synapse_stamp"
    fi
}

web_chat() {
    # The web chat's page (web/): npm installs exactly its lock file, esbuild bundles it into
    # bot/web_chat/static/, which the wheel carries. Node is needed to build the bot, never to run it.
    command -v npm >/dev/null || { echo "Building the web chat needs Node.js and npm (web/)." >&2; exit 1; }
    local stamp="web/node_modules/.installed-$(sha256sum web/package-lock.json | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "Installing the web chat's build tools into web/node_modules (from web/package-lock.json) ..."
        (cd web && npm ci --no-audit --no-fund --loglevel=error) && touch "$stamp"
    fi
    (cd web && npm run build --silent)
}

installed() {
    # What a practice installs: the wheel built from this tree, in a virtual environment of its own, with the
    # runtime lock file and nothing else (not editable; the source tree is not on its sys.path). The tests in
    # tests/packaging/ run the installed `photobot` from here (INSTALLED_PHOTOBOT_VENV).
    local venv=".venv-installed"
    local stamp="$venv/.installed-$(sha256sum requirements.lock | cut -c1-16)"
    local started=$SECONDS
    # Built from a clean copy of what the Dockerfile copies too: setuptools would otherwise reuse what an
    # earlier build or the editable install left behind (build/, *.egg-info/), and hide a missing package.
    local source; source="$(mktemp -d)"
    tar --exclude=__pycache__ --exclude='*.egg-info' -cf - pyproject.toml README.md LICENSE bot handlers storage \
        | tar -xf - -C "$source"
    rm -rf dist && quiet_pip .venv/bin/python -m pip wheel --quiet --no-deps --wheel-dir dist "$source"
    rm -rf "$source"
    if [ ! -f "$stamp" ]; then
        rm -rf "$venv" && "$PYTHON" -m venv "$venv"
        pip_install "$venv" --require-hashes -r requirements.lock
        touch "$stamp"
    fi
    pip_install "$venv" --no-deps --force-reinstall dist/gp_photo_bot-*.whl
    echo "   built $(basename dist/gp_photo_bot-*.whl) and installed it into $venv in $((SECONDS - started)) s"
}

lock() {
    check_python
    [ -x .venv-lock/bin/uv ] || { "$PYTHON" -m venv .venv-lock && pip_install .venv-lock "uv==$UV_VERSION"; }
    local compile=(.venv-lock/bin/uv pip compile pyproject.toml --quiet --generate-hashes --universal
                   --python-version 3.11 --annotation-style line --custom-compile-command "bash dev.sh lock")
    "${compile[@]}" -o requirements.lock
    # The dev lock is constrained by the runtime one, so tests run on exactly the versions practices get.
    "${compile[@]}" --extra dev -c requirements.lock -o requirements-dev.lock
}

case "${1:-}" in
    setup)
        setup
        ;;
    demo)
        setup
        exec .venv/bin/python -m devtools.demo "${@:2}"  # from this folder: devtools/ is not installed
        ;;
    lock)
        lock
        ;;
    test)
        setup
        echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
        echo "== mypy"; .venv/bin/mypy
        echo "== web chat"; web_chat
        echo "== wheel"; installed
        echo "== pytest"
        INSTALLED_PHOTOBOT_VENV="$PWD/.venv-installed" exec .venv/bin/python -m pytest "${@:2}"
        ;;
    *)
        sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
