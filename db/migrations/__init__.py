"""Alembic migrations of the store (``annot db upgrade``)."""
