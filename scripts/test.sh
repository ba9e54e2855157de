#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs all tests.
# Used by README ("run all tests") and by .ci/run. Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
echo "== installing Python packages"
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .

# Optional per-area setup (e.g. the slim Open WebUI for the end-to-end test), one script each.
for setup in .ci/setup.d/*.sh; do
  [ -e "$setup" ] || continue
  echo "== $setup"
  bash "$setup"
done

echo "== running tests"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
