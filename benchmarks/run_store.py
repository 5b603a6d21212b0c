"""Where benchmark runs are kept: one JSON file per study under benchmarks/results/raw/
(ignored by git), tables and plots beside it in benchmarks/results/ (tracked). The runs of
baselines that take hours (`ARCHIVED`) go to benchmarks/results/archive/ instead, which git
tracks: a table that reads them is then regenerable on a machine that did not make them."""

from __future__ import annotations

import json
import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent / 'results'
RAW = RESULTS / 'raw'
ARCHIVE = RESULTS / 'archive'
# GP-UCB-PE: 5-16 s per suggestion on 2 cores, 10-15 minutes per 50-trial study; every other
# designer's study takes under a minute and is cheaper to run again than to keep.
ARCHIVED = ('gp_ucb_pe',)


def store_for(designer: str) -> pathlib.Path:
  """Where a designer's runs are kept: the tracked archive for `ARCHIVED`, else raw."""
  return ARCHIVE if designer in ARCHIVED else RAW


def is_done(path: pathlib.Path, signature: str | None) -> bool:
  """A raw run exists and was made as `signature` says (runs that do not record one count
  as made otherwise)."""
  if not path.exists():
    return False
  return signature is None or json.loads(path.read_text()).get('signature') == signature


def write_table(name: str, lines: list[str]) -> str:
  """Writes `lines` to benchmarks/results/`name`.md, prints them, and returns the text."""
  text = '\n'.join(lines) + '\n'
  (RESULTS / f'{name}.md').write_text(text)
  print(text)
  return text


def shown_path(path: str | pathlib.Path) -> str:
  """A file's path as a table names it (a checkpoint): relative to the repository when inside."""
  resolved = pathlib.Path(path).resolve()
  root = RESULTS.parents[1]
  return str(resolved.relative_to(root) if resolved.is_relative_to(root) else resolved)


def checkpoint_flag(path: str | pathlib.Path, shipped: str | pathlib.Path) -> str:
  """What a table's command adds for the weights at `path`: ` --checkpoint PATH` (as the
  table names it), or nothing when they are the `shipped` file."""
  shown = shown_path(path)
  return f' --checkpoint {shown}' * (shown != shown_path(shipped))
