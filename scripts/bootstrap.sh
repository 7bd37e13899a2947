# Sourced by scripts/run and scripts/test: makes .venv (Python 3.11+) and installs
# the requirements file the caller names in REQUIREMENTS (requirements.txt, the runtime
# set, by default; scripts/test names requirements-dev.txt), again only when it changed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
cd "$ROOT"

find_python() {
    local candidate
    for candidate in python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "Stremora needs Python 3.11 or newer on PATH." >&2
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtualenv in .venv"
    "$(find_python)" -m venv "$VENV"
fi

REQUIREMENTS="${REQUIREMENTS:-requirements.txt}"

# A set's stamp is the hash of its file and of requirements.txt, which every set includes.
requirements_stamp() { cat "$1" requirements.txt | sha256sum | cut -d' ' -f1; }

if [ "$(cat "$VENV/.$REQUIREMENTS.sha256" 2>/dev/null)" != "$(requirements_stamp "$REQUIREMENTS")" ]; then
    echo "Installing $REQUIREMENTS into .venv"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQUIREMENTS"
    requirements_stamp "$REQUIREMENTS" >"$VENV/.$REQUIREMENTS.sha256"
    # The runtime set came with it.
    requirements_stamp requirements.txt >"$VENV/.requirements.txt.sha256"
fi

export PATH="$VENV/bin:$PATH"
