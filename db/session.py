"""One open store: the database engine and the files directory."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from annot.errors import AnnotError, StoreError

from . import engine as eng
from .files import store_dir

RETRIES = 50  # x 0.2 s: how long to wait for a schema another process is creating


@dataclass
class Store:
    engine: Engine
    files: Path
    url: str

    @property
    def location(self) -> str:
        """The database, for messages: an absolute file path for SQLite."""
        return eng.location(self.url)

    @contextlib.contextmanager
    def transaction(self):
        """One short transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session


def open_store(url: str | None = None, files: str | Path | None = None, upgrade: bool = True,
               create: bool = True) -> Store:
    """Open (and, with ``create``, on first use create) a store. An existing
    database on an older migration is not changed behind the user's back:
    they run ``annot db upgrade``. Without ``create`` (commands that only
    read) a missing or empty database is an error naming where it looked."""
    url = eng.database_url(url)
    where = eng.location(url)
    path = eng.sqlite_path(url)
    if not create and path is not None and not path.exists():
        raise StoreError(f"no store at {where}: nothing has been imported or registered there yet (set --db or "
                         "ANNOT_DB to use another)")
    engine = eng.make_engine(url)
    if not create and eng.is_empty(engine):
        raise StoreError(f"no store at {where}: the database has no annot tables (run `annot db upgrade` to "
                         "create them)")
    head = eng.head_revision()
    for _ in range(RETRIES):
        current = eng.current_revision(engine)
        if current == head:
            return Store(engine, store_dir(files), url)
        if current is not None:
            raise AnnotError(f"{where}: database at migration {current}, annot needs {head}: run `annot db upgrade`")
        if eng.is_empty(engine) and upgrade:
            try:
                eng.upgrade(url)
            except Exception:  # another process created it at the same moment: look again
                pass
        # tables but no version yet: another process is creating the schema right now
        time.sleep(0.2)
    raise AnnotError(f"{where}: not an annot database (tables but no migration version)")
