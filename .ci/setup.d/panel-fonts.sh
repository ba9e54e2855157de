#!/usr/bin/env bash
# Chinese fonts for the panel's browser screenshots (tests/test_panel_browser.py saves the 简体中文
# settings page); without them headless Chromium draws boxes. Idempotent: does nothing when a
# font covering Chinese is installed. Not needed to run the panel: admins' browsers bring their fonts.
set -euo pipefail

if command -v fc-list >/dev/null && [ -n "$(fc-list :lang=zh family 2>/dev/null | head -n1)" ]; then
  echo "a Chinese font is installed"
  exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
install() { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null 2>&1; }
# Screenshots only: a failed install is reported, never fatal for the test run.
if install || { $SUDO apt-get update -qq && install; }; then
  echo "installed fonts-noto-cjk"
else
  echo "warning: could not install fonts-noto-cjk; Chinese screenshots will show boxes"
fi
