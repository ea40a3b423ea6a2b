#!/usr/bin/env bash
# Install Debian's chromium (headless rendering of `mpp report --html` in tests/report).
# Idempotent: does nothing when /usr/bin/chromium is present. Needs root (or sudo) and apt.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
command -v apt-get >/dev/null || {
  echo "install-chromium.sh: apt-get is required (Debian/Ubuntu); install chromium by hand" >&2
  exit 1
}
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  command -v sudo >/dev/null || { echo "install-chromium.sh: run as root (or install sudo)" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
