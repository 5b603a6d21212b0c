"""`vizier-omnipred explain`: a closed-form formula for a CSV column or a Vizier study's metric.

    vizier-omnipred explain data.csv --target y [--inputs a,b]
    vizier-omnipred explain --server localhost:6006 --study owner/name [--metric loss]

Exit status 0 when a formula fits (held-out R2 >= --min-r2), 1 when none does, 2 on bad input.
"""

from __future__ import annotations

import csv
import pathlib
import sys

import numpy as np

from vizier_omnipred.symbolic.explain import ExplainConfig, explain, explain_trials


def read_csv(path: str, target: str | None, inputs: list[str] | None
             ) -> tuple[np.ndarray, np.ndarray, list[str], str]:
  """-> (x, y, input names, target name). Target defaults to the last column; a bad cell is named."""
  with open(path, newline='') as f:
    rows = list(csv.reader(f))
  if len(rows) < 2:
    raise ValueError(f'{path}: needs a header row and at least one data row.')
  header = [h.strip() for h in rows[0]]
  target = target or header[-1]
  if target not in header:
    raise ValueError(f'{path}: no column {target!r} (columns: {", ".join(header)}).')
  inputs = inputs or [h for h in header if h != target]
  for name in inputs:
    if name not in header:
      raise ValueError(f'{path}: no column {name!r} (columns: {", ".join(header)}).')
  cols = [header.index(n) for n in inputs + [target]]
  data = np.empty((len(rows) - 1, len(cols)))
  for r, row in enumerate(rows[1:], start=2):
    for k, c in enumerate(cols):
      try:
        data[r - 2, k] = float(row[c])
      except (ValueError, IndexError):
        cell = row[c] if c < len(row) else '<missing>'
        raise ValueError(f'{path}, line {r}, column {header[c]!r}: {cell!r} is not a number.'
                         ) from None
  return data[:, :-1], data[:, -1], inputs, target


def _study(args):
  from vizier.service import clients  # pylint: disable=g-import-not-at-top
  clients.environment_variables.server_endpoint = args.server
  owner, _, name = args.study.rpartition('/')
  study = clients.Study.from_owner_and_id(owner or 'owner', name)
  problem = study.materialize_problem_statement()
  trials = list(study.trials().get())  # already pyvizier Trials
  return problem, trials


def main(args) -> int:
  config = ExplainConfig(num_samples=args.samples, min_r2=args.min_r2, seed=args.seed,
                         refine=not args.no_refine)
  model = None
  if args.checkpoint:
    from vizier_omnipred.symbolic.model import load_pretrained  # pylint: disable=g-import-not-at-top
    model, _ = load_pretrained(args.checkpoint)
  inputs = args.inputs.split(',') if args.inputs else None
  try:
    if args.server:
      if not args.study:
        raise ValueError('--server needs --study OWNER/NAME.')
      problem, trials = _study(args)
      result = explain_trials(problem, trials, metric=args.metric, parameters=inputs,
                              model=model, config=config)
    else:
      if not args.csv:
        raise ValueError('Give a CSV file or --server and --study.')
      if not pathlib.Path(args.csv).exists():
        raise ValueError(f'{args.csv}: no such file.')
      x, y, names, target = read_csv(args.csv, args.target, inputs)
      result = explain(x, y, names, target=target, model=model, config=config)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(result)
  if result.fits:
    print('  constants: ' + ', '.join(f'{c:.6g}' for c in result.constants))
  return 0 if result.fits else 1
