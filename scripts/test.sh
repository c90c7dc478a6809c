#!/usr/bin/env bash
# Set everything up (locked Python deps, Debian's chromium for the browser tests) and run
# the whole test suite: lint, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r requirements.lock -e .

if ! command -v chromium >/dev/null 2>&1; then
    echo "scripts/test.sh: installing Debian's chromium for the browser tests" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "scripts/test.sh: chromium is missing and this user cannot apt-get install it;" \
             "install the 'chromium' package and re-run" >&2
        exit 1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

python3 -m ruff check .
exec python3 -m pytest "$@"
