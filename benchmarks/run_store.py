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


def kept_path(path: pathlib.Path, sig: str) -> pathlib.Path:
  """Where a run made with other weights or configs (signature `sig`) is kept once a run of
  the designer as it is now takes its place: tables of those weights (`--checkpoint`), or of
  the default it had, still read it."""
  return path.with_name(f'{path.stem}@{sig}.json')


def stored(path: pathlib.Path, signature: str | None) -> pathlib.Path | None:
  """The run at `path`, or the one kept beside it (`kept_path`), made as `signature` says."""
  if is_done(path, signature):
    return path
  kept = kept_path(path, signature) if signature else None
  return kept if kept is not None and is_done(kept, signature) else None


def write_run(path: pathlib.Path, text: str) -> None:
  """Stores a run at `path`, keeping the run already there beside it if it was made
  otherwise (`kept_path`)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.exists():
    old = json.loads(path.read_text()).get('signature')
    if old:
      path.replace(kept_path(path, old))
  path.write_text(text)


def adopt(target: pathlib.Path, sources, signature: str | None) -> bool:
  """Copies to `target` the first of `sources` (or the run kept beside one; an iterable,
  read only when `signature` is set) made as `signature` says, rather than running it again:
  the same signature is the same weights and configs, so on the same study and seed the same
  run (a setting made the default leaves its runs to the default, the old default's to the
  variant that keeps it). False where none is (or `signature` is None: a baseline's runs say
  nothing of how they were made)."""
  if signature is None:
    return False
  for source in sources:
    found = stored(source, signature)
    if found is not None and found != target:
      write_run(target, found.read_text())
      return True
  return False


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
