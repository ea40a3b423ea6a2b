#!/usr/bin/env bash
# Installs what the wallet's real Secret Service test needs: gnome-keyring (the Secret Service
# daemon) and dbus (a private session bus), from Debian apt. Idempotent. The test itself starts
# a throwaway bus and keyring daemon (tests/wallet/secret_service.py); nothing runs after it.
# apt installs system-wide (the daemon needs its shared libraries), so this needs root or sudo;
# a marker in .tools/keyring-test/ records where the binaries are, for the test to find.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
marker="$here/.tools/keyring-test/env"

if ! command -v gnome-keyring-daemon >/dev/null || ! command -v dbus-daemon >/dev/null; then
    sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends gnome-keyring dbus >/dev/null
fi

mkdir -p "$(dirname "$marker")"
{
    echo "GNOME_KEYRING_DAEMON=$(command -v gnome-keyring-daemon)"
    echo "DBUS_DAEMON=$(command -v dbus-daemon)"
} > "$marker"
echo "keyring test tools ready: $marker"
