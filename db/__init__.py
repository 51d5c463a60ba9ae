"""The SQLite/PostgreSQL store of datasets, versions, splits and models. Not built yet."""
