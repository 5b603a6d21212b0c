"""Run any Vizier designer on a (shifted BBOB) experimenter, through vizier.benchmarks.

Used by the demo and by benchmarks/bbob.py, so every designer is driven by the same loop:
Vizier's `BenchmarkRunner` with `GenerateAndEvaluate`, one designer instance per study
(`InRamDesignerPolicy` feeds it only new trials), timed per suggestion.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import attrs
import numpy as np
from vizier import algorithms as vza
from vizier import benchmarks
from vizier import pyvizier as vz
from vizier._src.benchmarks.experimenters import numpy_experimenter, shifting_experimenter
from vizier._src.benchmarks.experimenters.synthetic import bbob

DesignerFactory = Callable[[vz.ProblemStatement, Optional[int]], vza.Designer]


def shifted_bbob(function: str, dim: int, seed: int) -> benchmarks.BenchmarkState:
  """A BBOB function on [-5, 5]^dim whose optimum is moved to a seeded point in [-4, 4]^dim.

  Unshifted BBOB functions have their optimum at the centre, where Vizier designers put
  their first trial; the shift keeps comparisons honest.
  """
  fn = getattr(bbob, function, None)
  if fn is None or not callable(fn):
    raise ValueError(f'Unknown BBOB function {function!r}.')
  problem = bbob.DefaultBBOBProblemStatement(dim)
  exptr = numpy_experimenter.NumpyExperimenter(fn, problem)
  shift = np.random.default_rng([seed, dim]).uniform(-4, 4, dim)
  return shifting_experimenter.ShiftingExperimenter(exptr, shift=shift, should_restrict=False)


@attrs.frozen
class StudyRun:
  """One designer on one study. `seconds[i]` is the wall time of the i-th suggest+evaluate
  step, taken when `completed[i]` trials were complete; `splits[i]` the designer's own time
  split of that step's suggestion (its `last_report['split']`, e.g. condition / search /
  sample seconds), or None where it reports none."""

  name: str
  trials: list
  seconds: list
  completed: list
  splits: list = attrs.field(factory=list)

  def values(self, metric: str = 'bbob_eval') -> np.ndarray:
    """Objective per trial in order; NaN for infeasible ones."""
    out = []
    for t in self.trials:
      m = None if t.final_measurement is None else t.final_measurement.metrics.get(metric)
      out.append(np.nan if (m is None or t.infeasible) else m.value)
    return np.asarray(out, dtype=np.float64)

  def best_so_far(self, metric: str = 'bbob_eval', minimize: bool = True) -> np.ndarray:
    v = self.values(metric)
    v = np.where(np.isnan(v), np.inf if minimize else -np.inf, v)
    return np.minimum.accumulate(v) if minimize else np.maximum.accumulate(v)


def run_study(name: str, factory: DesignerFactory, experimenter, num_trials: int, *,
              seed: int, batch_size: int = 1, progress=None) -> StudyRun:
  """Runs `num_trials` trials; `progress` (a tqdm bar) is advanced per trial."""
  made = []  # the designer the state builds, to read its reports

  def keeping(problem, seed=None):
    made.append(factory(problem, seed))
    return made[-1]
  state = benchmarks.DesignerBenchmarkStateFactory(
      experimenter=experimenter, designer_factory=keeping)(seed=seed)
  runner = benchmarks.BenchmarkRunner(
      benchmark_subroutines=[benchmarks.GenerateAndEvaluate(batch_size)], num_repeats=1)
  seconds, completed, splits = [], [], []
  done, last = 0, None
  while done < num_trials:
    t0 = time.perf_counter()
    runner.run(state)
    seconds.append(time.perf_counter() - t0)
    completed.append(done)
    report = getattr(made[-1], 'last_report', None) if made else None
    splits.append(report.get('split') if report and report is not last else None)
    last = report
    trials = state.algorithm.supporter.GetTrials(status_matches=vz.TrialStatus.COMPLETED)
    if progress is not None:  # a designer that suggests in batches may overshoot num_trials
      progress.update(min(len(trials), num_trials) - min(done, num_trials))
    done = len(trials)
  trials = state.algorithm.supporter.GetTrials(status_matches=vz.TrialStatus.COMPLETED)
  return StudyRun(name=name, trials=list(trials)[:num_trials], seconds=seconds,
                  completed=completed, splits=splits)
