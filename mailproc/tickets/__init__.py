"""Ticket use cases: state changes and the read-only views the command line prints."""
