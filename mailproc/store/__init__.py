"""Persistence: SQLAlchemy models, engine set-up and the queries the application needs."""
