"""Outbound mail: localized templates rendered with Babel catalogs and composed into messages."""
