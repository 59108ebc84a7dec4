"""Tests of the network adapters against real servers: aiosmtpd, Dovecot, PostgreSQL."""
