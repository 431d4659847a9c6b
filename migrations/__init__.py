"""Alembic migrations (run with `roombridge migrate`)."""
