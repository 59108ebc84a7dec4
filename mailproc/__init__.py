"""mailproc: an email-centric support inbox processor."""

__version__ = "0.1.0"
