"""Durable intake: raw mail and its envelope, committed before anything is acknowledged."""
