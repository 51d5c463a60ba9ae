"""The store: datasets, immutable dataset versions, leak-free splits, images,
model versions and training runs, in SQLite (or PostgreSQL through the same
SQLAlchemy URL), with files under a store directory.

``annot.db.schema`` holds the tables, ``annot.db.engine`` opens a database and
brings it to the newest migration.
"""
