"""Why OmniPred stalls on smooth functions: the candidate search, or the model?

    python -m benchmarks.experiments.smooth_oracle [--seeds 0,1] [--trials 50]

Runs the designer on smooth shifted BBOB functions in 8-D with its surrogate replaced by an
oracle (the true function: every candidate's samples are its exact value), once ranking the
default pool and once with the acquisition search, beside the LM itself and beside a plain GP
in the same loop (`gp_pool` / `gp_search`: `GaussianProcess` below, a classical model of the
study's own trials). If the oracle also stalls, the candidates never come close enough to the
optimum (the search is the cause); if the oracle converges and the LM does not, the model's
resolution near the incumbent is; where the GP lands between them says how much a classical
model of these few trials recovers in this loop. Writes benchmarks/results/smooth_oracle.md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from scipy import linalg, stats  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402

from benchmarks import bbob_reference, designer_zoo, run_store  # noqa: E402
from designers.acquisition_search import EvolutionarySearch, RankPool  # noqa: E402
from designers.candidates import CandidateSpace  # noqa: E402
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig  # noqa: E402
from designers.study_runner import run_study, shifted_bbob  # noqa: E402

FUNCTIONS = ('Sphere', 'Ellipsoidal', 'StepEllipsoidal', 'RosenbrockRotated')
DIM = 8


class Oracle:
  """A surrogate that knows the function: its samples are the exact value (study units)."""

  def __init__(self, experimenter):
    self._exptr = experimenter

  def condition(self, parameters, y, *, time_budget_s=None):
    return {'training_steps': 0}

  def sample(self, parameters, num_samples, *, seed):
    trials = [vz.Trial(parameters=p) for p in parameters]
    self._exptr.evaluate(trials)
    y = np.asarray([t.final_measurement.metrics['bbob_eval'].value for t in trials])
    return np.repeat(y[:, None], num_samples, axis=1)


# The GP's hyperparameters, chosen by marginal likelihood over this grid at every condition():
# one Matern-5/2 length scale for every axis of the unit cube (from a twentieth of an axis to
# three cubes wide) and a noise variance relative to the signal's (from noise-free to a tenth).
GP_LENGTH_SCALES = np.geomspace(0.05, 3.0, 12)
GP_NOISE_RATIOS = (1e-6, 1e-4, 1e-2, 1e-1)


def _matern52(a: np.ndarray, b: np.ndarray, length_scale: float) -> np.ndarray:
  r = np.sqrt(5.0) * np.sqrt(np.maximum(((a[:, None, :] - b[None]) ** 2).sum(-1), 0.0))
  r = r / length_scale
  return (1.0 + r + r ** 2 / 3.0) * np.exp(-r)


class GaussianProcess:
  """A plain GP surrogate: zero mean on the standardised (warped) y, an isotropic Matern-5/2
  kernel over the unit cube, length scale and noise by marginal likelihood on a grid, the
  signal variance in closed form; samples are Gaussian draws from its posterior marginals."""

  def __init__(self, problem: vz.ProblemStatement):
    self._space = CandidateSpace(problem.search_space)

  def _unit(self, parameters) -> np.ndarray:
    return self._space.to_unit([vz.TrialSuggestion(p) for p in parameters])

  def condition(self, parameters, y, *, time_budget_s=None):
    x, y = self._unit(parameters), np.asarray(y, dtype=np.float64)
    self._mean, self._scale = float(y.mean()), float(y.std()) or 1.0
    z = (y - self._mean) / self._scale
    best = None
    for length in GP_LENGTH_SCALES:
      for noise in GP_NOISE_RATIOS:
        factor = linalg.cho_factor(_matern52(x, x, length) + noise * np.eye(len(x)))
        alpha = linalg.cho_solve(factor, z)
        variance = float(z @ alpha) / len(z)
        evidence = -0.5 * len(z) * np.log(variance) - np.log(np.diag(factor[0])).sum()
        if best is None or evidence > best[0]:
          best = (evidence, length, factor, alpha, variance)
    _, self._length, self._factor, self._alpha, self._variance = best
    self._x = x
    return {'training_steps': 0, 'length_scale': float(self._length)}

  def _posterior(self, parameters) -> tuple[np.ndarray, np.ndarray]:
    """-> (mean, standard deviation) [n] of the standardised y at `parameters`."""
    k = _matern52(self._unit(parameters), self._x, self._length)
    var = self._variance * (1.0 - np.einsum('ij,ji->i', k, linalg.cho_solve(self._factor, k.T)))
    return k @ self._alpha, np.sqrt(np.maximum(var, 0.0))

  def sample(self, parameters, num_samples, *, seed):
    mean, sd = self._posterior(parameters)
    draws = np.random.default_rng(seed).standard_normal((len(mean), num_samples))
    return self._mean + self._scale * (mean[:, None] + sd[:, None] * draws)

  def quantiles(self, parameters, levels):
    """-> [n, len(levels)] the posterior marginals' exact quantiles (the search's score)."""
    mean, sd = self._posterior(parameters)
    z = mean[:, None] + sd[:, None] * stats.norm.ppf(np.asarray(levels))[None]
    return self._mean + self._scale * z


def designer(name: str, function: str):
  """A designer factory: `oracle_pool` / `oracle_search` (the oracle surrogate on `function`),
  `gp_pool` / `gp_search` (the plain GP), or an OmniPred variant of benchmarks/bbob.py."""
  if name.startswith(('oracle_', 'gp_')):
    config = OmniPredDesignerConfig(
        optimizer=EvolutionarySearch() if name.endswith('_search') else RankPool())
    surrogate = ((lambda p, seed: Oracle(shifted_bbob(function, DIM, seed or 0)))
                 if name.startswith('oracle_') else (lambda p, seed: GaussianProcess(p)))
    return lambda p, seed=None: OmniPredDesigner(p, seed=seed, config=config,
                                                 surrogate=surrogate(p, seed))
  return designer_zoo.designer_factory(name)


DEFAULT_DESIGNERS = ('oracle_pool,oracle_search,gp_pool,gp_search,omnipred,omnipred_search,'
                     'omnipred_local,omnipred_logwarp')


def raw_path(name: str, function: str, seed: int, trials: int) -> pathlib.Path:
  return run_store.RAW / 'smooth' / f'{name}_{function}_{seed}_{trials}.json'


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seeds', default='0')
  parser.add_argument('--trials', type=int, default=50)
  parser.add_argument('--designers', default=DEFAULT_DESIGNERS)
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(',')]
  names = args.designers.split(',')
  jobs = [(n, f, s) for f in FUNCTIONS for s in seeds for n in names
          if not raw_path(n, f, s, args.trials).exists()]
  bar = tqdm(total=len(jobs) * args.trials, desc='smooth')
  for name, function, seed in jobs:  # resumable: a study that ran is stored and skipped
    run = run_study(name, designer(name, function), shifted_bbob(function, DIM, seed),
                    args.trials, seed=seed, progress=bar)
    path = raw_path(name, function, seed, args.trials)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'values': [float(v) for v in run.values()]}))
  bar.close()
  regret = {}
  for function in FUNCTIONS:
    for seed in seeds:
      f_opt, f_med = bbob_reference.reference(function, DIM, seed)
      for name in names:
        v = np.asarray(json.loads(raw_path(name, function, seed, args.trials).read_text())
                       ['values'])
        best = np.minimum.accumulate(np.where(np.isnan(v), np.inf, v))
        regret[(name, function, seed)] = np.clip((best - f_opt) / (f_med - f_opt), 0, None)
  marks = [m for m in (10, 25, 50, 100) if m <= args.trials]
  lines = [f'Smooth 8-D shifted BBOB, seeds {seeds}: normalised regret (mean over seeds) of the'
           ' designer with an oracle surrogate (the true function), with a plain GP (isotropic'
           ' Matern-5/2, marginal likelihood on a grid) and with the LM, ranking the default'
           ' pool or searching the acquisition; the designer\'s other settings at their'
           ' defaults.', '',
           '| function | designer | ' + ' | '.join(f'@ {m}' for m in marks) + ' |',
           '|---|---|' + '---|' * len(marks)]
  for function in FUNCTIONS:
    for name in names:
      curves = [regret[(name, function, s)] for s in seeds]
      lines.append(f'| {function} | {name} | ' + ' | '.join(
          f'{np.mean([c[m - 1] for c in curves]):.2e}' for m in marks) + ' |')
  flags = '' if args.designers == DEFAULT_DESIGNERS else f' --designers {args.designers}'
  lines += ['', f'Command: `python -m benchmarks.experiments.smooth_oracle --seeds {args.seeds}'
            f' --trials {args.trials}{flags}` (studies stored under'
            ' benchmarks/results/raw/smooth/, reused when present).']
  run_store.write_table('smooth_oracle', lines)
  return 0


if __name__ == '__main__':
  sys.exit(main())
