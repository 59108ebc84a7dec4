#!/bin/sh
# Install what the tests need beyond the Python packages: a Dovecot IMAP server for the adapter
# tests, and Debian's Chromium with its chromedriver for the dashboard's browser test (driven by
# selenium from /usr/bin; no browser is downloaded). Each is skipped when already installed.
# The packaged Dovecot service is left stopped; the tests start a private instance of their own.
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

PACKAGES=""
if command -v dovecot >/dev/null 2>&1; then
    echo "dovecot already installed: $(dovecot --version)"
else
    PACKAGES="dovecot-imapd"
fi
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium already installed: $(/usr/bin/chromedriver --version)"
else
    PACKAGES="$PACKAGES chromium chromium-driver"
fi
if [ -z "$PACKAGES" ]; then
    exit 0
fi

$SUDO apt-get update
# shellcheck disable=SC2086 # one word per package
$SUDO apt-get install -y --no-install-recommends $PACKAGES
# Debian starts the system service on install where systemd runs; the tests do not need it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet dovecot 2>/dev/null; then
    $SUDO systemctl stop dovecot || true
    $SUDO systemctl disable dovecot || true
fi
command -v dovecot >/dev/null 2>&1 && echo "installed: dovecot $(dovecot --version)"
echo "installed: $(/usr/bin/chromedriver --version)"
