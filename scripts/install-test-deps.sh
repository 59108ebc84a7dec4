#!/bin/sh
# Install what the adapter tests need beyond the Python packages: a Dovecot IMAP server.
# The packaged service is left stopped; the tests start a private instance of their own.
set -eu

if command -v dovecot >/dev/null 2>&1; then
    echo "dovecot already installed: $(dovecot --version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends dovecot-imapd
# Debian starts the system service on install where systemd runs; the tests do not need it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet dovecot 2>/dev/null; then
    $SUDO systemctl stop dovecot || true
    $SUDO systemctl disable dovecot || true
fi
echo "installed: $(dovecot --version)"
