"""Where a Vizier database URL leads: the SQLAlchemy URL with the driver this package installs.

A `postgresql://` URL without a driver names psycopg (version 3, the `[postgres]` extra):
SQLAlchemy's own default, psycopg2, returns binary columns as memoryview rather than bytes.
Used by the server's datastore (`designers.sql_store`) and by pretraining on a user's database
(`pretraining.user_studies`).
"""

from __future__ import annotations

import sqlalchemy as sqla


def engine_url(url: str) -> sqla.engine.URL:
  parsed = sqla.engine.make_url(url)
  if parsed.drivername == 'postgresql':
    parsed = parsed.set(drivername='postgresql+psycopg')
  return parsed


def redacted(url: str) -> str:
  """The URL with its password hidden, for messages and logs."""
  try:
    return sqla.engine.make_url(url).render_as_string(hide_password=True)
  except sqla.exc.ArgumentError:
    return url
