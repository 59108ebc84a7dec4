"""The worker: pending raw mail becomes parsed messages and tickets; quarantine and replay.

Nothing is imported here: the parse workers import ``mailproc.processing.parsepool`` and must
not pull in the database layer.
"""
