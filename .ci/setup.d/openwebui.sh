#!/usr/bin/env bash
# Installs the slim Open WebUI 0.12.4 (no torch) into its own venv for the end-to-end test
# (tests/test_openwebui_e2e.py). Idempotent: does nothing when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION="0.12.4"
VENV=".cache/openwebui-venv"
WHEELS=".cache/openwebui-wheel"
# What the bundled Function's front matter asks for (Open WebUI skips pip installs in OFFLINE_MODE).
FILTER_REQS="$(sed -n 's/^requirements: *//p' filters/tokenlimit_function.py | head -n1)"
STAMP="$VENV/.tokenlimit-setup"
WANT="open-webui==$VERSION slim; $FILTER_REQS"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "open-webui $VERSION and the filter's requirements already installed in $VENV"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

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
if [ -n "$FILTER_REQS" ]; then
  # shellcheck disable=SC2086
  "${PIP[@]}" install $(echo "$FILTER_REQS" | tr ',' ' ')
fi
echo "$WANT" > "$STAMP"
echo "open-webui $VERSION installed in $VENV"
