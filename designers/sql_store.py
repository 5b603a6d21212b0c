"""Vizier's SQL datastore on any database SQLAlchemy reaches, not only SQLite.

google-vizier 0.1.24's servicer builds every engine with SQLite's `check_same_thread` and a
static pool, so `postgresql://...` fails before the first query; and its tables keep the
serialized protos in String columns, which SQLite stores as given but PostgreSQL refuses bytes
for. Here a SQLite URL gets Vizier's own engine settings; any other gets a pooled engine that
checks its connection before use, and the tables, created first, hold the protos in binary
columns (Vizier's table definitions, copied with that one change, so its own `create_all`
then finds them in place). The driver: `vizier_omnipred.database`.
"""

from __future__ import annotations

import sqlalchemy as sqla
from vizier._src.service import sql_datastore

from vizier_omnipred.database import engine_url, redacted  # noqa: F401  # redacted: re-exported

_SERIALIZED_PREFIX = 'serialized_'


def engine_for(url: str) -> sqla.engine.Engine:
  """An engine for `url`: Vizier's settings for SQLite, a pre-pinged pool otherwise."""
  parsed = engine_url(url)
  if parsed.get_backend_name() == 'sqlite':
    return sqla.create_engine(url, connect_args={'check_same_thread': False}, echo=False,
                              future=True, poolclass=sqla.pool.StaticPool)
  return sqla.create_engine(parsed, future=True, pool_pre_ping=True)


def _binary_columns(metadata: sqla.MetaData) -> None:
  """Every serialized-proto column of Vizier's tables typed binary, in place."""
  for table in metadata.sorted_tables:
    for column in table.columns:
      if column.name.startswith(_SERIALIZED_PREFIX):
        column.type = sqla.LargeBinary()


def open_datastore(url: str) -> sql_datastore.SQLDataStore:
  """Vizier's SQL datastore on the database at `url`, its tables created if missing."""
  engine = engine_for(url)
  if engine.dialect.name == 'sqlite':
    return sql_datastore.SQLDataStore(engine)
  # Vizier's table definitions, read off a throwaway in-memory store, created here with
  # binary columns; the real store's `create_all` then finds them and its queries are
  # typed to match.
  template = sql_datastore.SQLDataStore(sqla.create_engine('sqlite://'))
  metadata = sqla.MetaData()
  for table in template._root_metadata.sorted_tables:  # pylint: disable=protected-access
    table.to_metadata(metadata)
  _binary_columns(metadata)
  metadata.create_all(engine)
  store = sql_datastore.SQLDataStore(engine)
  _binary_columns(store._root_metadata)  # pylint: disable=protected-access
  return store
