"""Suggestion latency in studies of many parameters (the shipped model, one thread).

    python -m benchmarks.experiments.many_parameters [--dims 60,100] [--trials 25]

y depends on 3 of the d parameters (a shifted bowl); every suggestion's seconds are recorded,
with whether the parameter choice stopped at its bound (`parameters_read_cut`). Writes
benchmarks/results/many_parameters.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import process_setup

process_setup.prepare()  # before torch loads

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import algorithms as vza  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402

from benchmarks.run_store import RESULTS  # noqa: E402
from designers.omnipred_designer import OmniPredDesigner  # noqa: E402


def run(dim: int, trials: int) -> tuple[list[float], int]:
  """-> (seconds per suggestion, how many choices stopped at the bound)."""
  problem = vz.ProblemStatement()
  for j in range(dim):
    problem.search_space.root.add_float_param(f'x{j:03d}', -1.0, 1.0)
  problem.metric_information.append(
      vz.MetricInformation('loss', goal=vz.ObjectiveMetricGoal.MINIMIZE))
  designer = OmniPredDesigner(problem, seed=0)
  seconds, cut = [], 0
  for i in tqdm(range(trials), desc=f'{dim} parameters', dynamic_ncols=True):
    t0 = time.perf_counter()
    (s,) = designer.suggest(1)
    seconds.append(time.perf_counter() - t0)
    cut += 'parameters_read_cut' in s.metadata.ns('omnipred')
    t = s.to_trial(i + 1)
    x = [t.parameters[f'x{j:03d}'].value for j in range(3)]
    t.complete(vz.Measurement({'loss': float(np.sum((np.asarray(x) - 0.3) ** 2))}))
    designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
  return seconds, cut


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dims', default='60,100')
  parser.add_argument('--trials', type=int, default=25)
  args = parser.parse_args(argv)
  lines = [f'Seconds per suggestion with many parameters ({args.trials} trials, y depends on 3;'
           ' shipped model, default designer).', '',
           '| parameters | median s | max s | choices stopped at the bound |', '|---|---|---|---|']
  for dim in (int(d) for d in args.dims.split(',')):
    seconds, cut = run(dim, args.trials)
    lines.append(f'| {dim} | {np.median(seconds):.2f} | {max(seconds):.2f} | {cut} |')
  lines += ['', f'Command: `python -m benchmarks.experiments.many_parameters --dims {args.dims}'
            f' --trials {args.trials}`']
  text = '\n'.join(lines) + '\n'
  (RESULTS / 'many_parameters.md').write_text(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
