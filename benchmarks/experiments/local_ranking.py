"""How well does the model rank the candidates near the incumbent, scored in different ways?

    python -m benchmarks.experiments.local_ranking [--studies Sphere:8:1,...] [--checks 15,25,35,45]

Runs the default designer on smooth shifted BBOB studies; at each check (number of completed
trials) it builds the pool the designer would score (512 candidates, 60% moves within the
trust region around the 3 best trials), reads every candidate's true value, and scores the
pool with the shipped model in several ways over the same context: the designer's UCB (the
0.9 quantile of 16 samples), the mean of 128 samples, the exact median and 0.9 quantile (the
token tree, no sampling), and the median averaged over contexts of 80% of the trials (4
draws). If a score with less Monte Carlo noise or an averaged context ranked the local moves
better, the search around the model would be the lever; if none does, the model's resolution
near the incumbent is. Reported per score, averaged over studies and checks: Spearman's rank
correlation with the truth over the local moves and over the whole pool, and the share of the
pool that is truly better than the candidate the score would pick. Writes
benchmarks/results/local_ranking.md.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import algorithms as vza  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402

from benchmarks import run_store  # noqa: E402
from designers import candidate_pool  # noqa: E402
from designers.candidates import CandidateSpace  # noqa: E402
from designers.designer_config import OmniPredDesignerConfig  # noqa: E402
from designers.omnipred_designer import OmniPredDesigner  # noqa: E402
from designers.study_runner import shifted_bbob  # noqa: E402
from designers.warping import YWarp  # noqa: E402

DEFAULT_STUDIES = 'Sphere:8:1,Ellipsoidal:8:1,RosenbrockRotated:8:1,StepEllipsoidal:8:2,Sphere:4:2'
METRIC = 'bbob_eval'
POOL = 512
UCB_SAMPLES = 16  # the designer's num_samples
MEAN_SAMPLES = 128
BAGS, BAG_SHARE = 4, 0.8  # contexts of 80% of the trials, median averaged over 4 of them
SCORES = ('UCB 0.9, 16 samples (the designer)', f'mean of {MEAN_SAMPLES} samples',
          'exact median', 'exact 0.9 quantile', f'exact median over {BAGS} contexts of 80%')


def _values(exptr, params) -> np.ndarray:
  trials = [vz.Trial(parameters=p) for p in params]
  exptr.evaluate(trials)
  return np.asarray([t.final_measurement.metrics[METRIC].value for t in trials])


def _scores(surrogate, warp: YWarp, trials, params, rng) -> list[np.ndarray]:
  """The pool's scores [n] (larger is better) in the order of SCORES."""

  def condition(rows):
    oriented = np.asarray([warp.orient(trials[i].final_measurement.metrics[METRIC].value)
                           for i in rows])
    surrogate.condition([trials[i].parameters for i in rows],
                        warp.to_study_direction(warp.warp(oriented)))

  def oriented(study_units):
    return warp.from_study_direction(study_units)

  everyone = np.arange(len(trials))
  bagged = []
  for _ in range(BAGS):
    condition(rng.choice(everyone, int(round(BAG_SHARE * len(trials))), replace=False))
    bagged.append(oriented(surrogate.quantiles(params, [0.5])[:, 0]))
  condition(everyone)
  ucb = oriented(surrogate.sample(params, UCB_SAMPLES, seed=int(rng.integers(2**31))))
  many = oriented(surrogate.sample(params, MEAN_SAMPLES, seed=int(rng.integers(2**31))))
  # Oriented larger-is-better: the study's upper quantile is the lower one when minimising.
  upper = 0.9 if warp.maximize else 0.1
  return [np.quantile(ucb, 0.9, axis=1), many.mean(axis=1),
          oriented(surrogate.quantiles(params, [0.5])[:, 0]),
          oriented(surrogate.quantiles(params, [upper])[:, 0]), np.mean(bagged, axis=0)]


def measure(function: str, dim: int, seed: int, checks: list[int], progress) -> list[dict]:
  """One study: per check and score, (local rho, pool rho, share of the pool better)."""
  exptr = shifted_bbob(function, dim, seed)
  problem = exptr.problem_statement()
  config = OmniPredDesignerConfig()
  designer = OmniPredDesigner(problem, seed=seed, config=config)
  surrogate = designer.surrogate  # the shipped model, conditioned here as the designer does
  warp = YWarp(maximize=False, kind=config.warp_kind(False))
  space = CandidateSpace(problem.search_space, seed=seed)
  rng = np.random.default_rng(seed)
  trials, out = [], []
  for n in range(max(checks)):
    suggestion = designer.suggest(1)[0]
    trial = vz.Trial(parameters=suggestion.parameters, id=n + 1)
    exptr.evaluate([trial])
    trials.append(trial)
    designer.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
    progress.update(1)
    if n + 1 not in checks:
      continue
    ordered = sorted(trials, key=lambda t: t.final_measurement.metrics[METRIC].value)
    unit = candidate_pool.pool(space, ordered[:config.num_centres], POOL,
                               local_fraction=config.local_fraction,
                               radius=config.trust_region.initial_radius, rng=rng)
    local = np.arange(POOL) < int(round(POOL * config.local_fraction))
    params = space.to_parameters(unit)
    truth = -_values(exptr, params)  # oriented: larger is better
    for name, score in zip(SCORES, _scores(surrogate, warp, trials, params, rng)):
      out.append(dict(score=name, local=spearmanr(score[local], truth[local]).statistic,
                      pool=spearmanr(score, truth).statistic,
                      better=float(np.mean(truth > truth[int(np.argmax(score))]))))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--studies', default=DEFAULT_STUDIES, help='FUNCTION:DIM:SEED,...')
  parser.add_argument('--checks', default='15,25,35,45')
  args = parser.parse_args(argv)
  studies = [(f, int(d), int(s)) for f, d, s in (x.split(':') for x in args.studies.split(','))]
  checks = [int(c) for c in args.checks.split(',')]
  rows = []
  with tqdm(total=len(studies) * max(checks), desc='local ranking') as bar:
    for function, dim, seed in studies:
      rows += measure(function, dim, seed, checks, bar)
  lines = [f'The shipped model ranking the designer\'s pool near the incumbent: {len(studies)}'
           f' smooth shifted BBOB studies ({args.studies}), at {checks} completed trials; mean'
           ' over studies and checks. Local: the candidates moved within the trust region'
           f' ({OmniPredDesignerConfig().local_fraction:.0%} of {POOL}); pool: all of them;'
           ' better: the share of the pool truly better than the candidate the score would'
           ' pick (lower is better).', '',
           '| score | Spearman, local moves | Spearman, pool | pool better than the pick |',
           '|---|---|---|---|']
  for name in SCORES:
    mine = [r for r in rows if r['score'] == name]
    lines.append(f'| {name} | {np.mean([r["local"] for r in mine]):.3f} | '
                 f'{np.mean([r["pool"] for r in mine]):.3f} | '
                 f'{np.mean([r["better"] for r in mine]):.3f} |')
  lines += ['', f'Command: `python -m benchmarks.experiments.local_ranking --studies {args.studies}'
            f' --checks {args.checks}`']
  run_store.write_table('local_ranking', lines)
  return 0


if __name__ == '__main__':
  sys.exit(main())
