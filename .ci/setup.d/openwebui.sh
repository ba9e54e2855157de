#!/usr/bin/env bash
# Installs the slim Open WebUI 0.12.4 (no torch) into its own venv for the end-to-end test
# (tests/test_openwebui_e2e.py). Idempotent: does nothing when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION="0.12.4"
VENV=".cache/openwebui-venv"
WHEELS=".cache/openwebui-wheel"

if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("open-webui"))' 2>/dev/null)" = "$VERSION" ] \
   && [ -f "$VENV/.slim-requirements-installed" ]; then
  echo "open-webui $VERSION already installed in $VENV"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null

mkdir -p "$WHEELS"
wheel="$(ls "$WHEELS"/open_webui-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$wheel" ]; then
  "${PIP[@]}" download --no-deps --only-binary=:all: -d "$WHEELS" "open-webui==$VERSION"
  wheel="$(ls "$WHEELS"/open_webui-"$VERSION"-*.whl | head -n1)"
fi

# The slim requirement list ships inside the wheel.
"$VENV/bin/python" - "$wheel" "$WHEELS/requirements-slim.txt" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    names = [n for n in zf.namelist() if n.endswith("requirements-slim.txt")]
    if not names:
        sys.exit(f"{wheel} has no requirements-slim.txt")
    with open(out, "wb") as fh:
        fh.write(zf.read(sorted(names, key=len)[0]))
PY

"${PIP[@]}" install --no-deps "$wheel"
"${PIP[@]}" install -r "$WHEELS/requirements-slim.txt"
touch "$VENV/.slim-requirements-installed"
echo "open-webui $VERSION installed in $VENV"
