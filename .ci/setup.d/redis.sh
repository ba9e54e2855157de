#!/usr/bin/env bash
# What the Redis store's tests need beyond redis-server (which scripts/test.sh installs):
# the openssl command, to make a throw-away certificate for the rediss:// (TLS) test.
# Idempotent: does nothing when openssl is already there.
set -euo pipefail

if command -v openssl >/dev/null; then
  echo "openssl already installed"
  exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openssl >/dev/null
echo "installed openssl"
