"""The command line shared by the (problem x designer x seed) benchmarks, conditional.py and
multi_objective.py: each study's raw run is one file, so a run resumes (an OmniPred run made
with other weights or configs runs again, as in bbob.py), `--fresh` drops a designer's files
(after a change of code), and `--aggregate` only rewrites the table."""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from benchmarks.run_store import RESULTS


def main(doc: str, problems: Sequence[str], designers: Sequence[str], seeds: Sequence[int], *,
         run: Callable, aggregate: Callable, raw_path: Callable, argv=None) -> int:
  ap = argparse.ArgumentParser(description=doc.split('\n')[0])
  ap.add_argument('--problems', nargs='+', default=list(problems), choices=list(problems))
  ap.add_argument('--designers', nargs='+', default=list(designers))
  ap.add_argument('--seeds', nargs='+', type=int, default=list(seeds))
  ap.add_argument('--aggregate', action='store_true', help='only write the table and plot')
  ap.add_argument('--fresh', nargs='*', default=None, metavar='DESIGNER',
                  help='delete these designers\' raw runs first (e.g. after a change of code)')
  args = ap.parse_args(argv)
  for d in args.fresh or ():
    for p in problems:
      for s in args.seeds:
        raw_path(p, d, s).unlink(missing_ok=True)
  if not args.aggregate:
    run(args.problems, args.designers, args.seeds)
  print(aggregate(args.problems, designers, args.seeds))
  return 0


def write_results(fig, lines: Sequence[str], name: str) -> str:
  """Saves the figure as benchmarks/results/<name>.png and the table lines, with the command
  that made them, as <name>.md; -> the table's text."""
  fig.tight_layout()
  fig.savefig(RESULTS / f'{name}.png', dpi=110)
  text = '\n'.join(lines) + f'\n\nMade by `python -m benchmarks.{name}`.\n'
  (RESULTS / f'{name}.md').write_text(text)
  return text
