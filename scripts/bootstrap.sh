# Sourced by scripts/run and scripts/test: makes .venv (Python 3.11+) and installs
# requirements.txt into it, again only when that file has changed.

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

requirements_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$requirements_hash" ]; then
    echo "Installing requirements.txt into .venv"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r requirements.txt
    echo "$requirements_hash" >"$VENV/.requirements.sha256"
fi

export PATH="$VENV/bin:$PATH"
