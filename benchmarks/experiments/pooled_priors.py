"""How well does the transfer model rank a left-out study's configurations, reading the
related prior studies in different ways?

    python -m benchmarks.experiments.pooled_priors [--sizes 5,10] [--draws 2]

For every related left-out study of the transfer benchmark (`benchmarks.transfer`: the same
scikit-learn model on other datasets, or other instances of one BBOB function; each prior study
30 random trials), the shipped transfer checkpoint reads `--sizes` random trials of the study
(`--draws` draws of them) and predicts the median of 40 other random configurations. Read five
ways: without the prior studies; with them as prior studies (the regressor's default); pooled
into the study's own trials (each prior study's y mapped by rank onto the range of the study's
y, `relevance.pooled_values`); each study's way chosen by the held-out likelihood of the
study's trials (`RelevanceConfig(prior_studies='pooled')`); and an equal mixture of the second
and third readings' predictive distributions (`prior_studies='mixture'`, the designer's
default). Reported: Spearman's rank correlation of the predicted medians with the true scores,
per family and overall. If pooling ranks far better where the studies are alike and worse where
they are not, the choice is what decides whether it helps an optimiser. Writes
benchmarks/results/pooled_priors.md.
"""

from __future__ import annotations

import argparse

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks import run_store, transfer_families, tuning_studies, tuning_tasks  # noqa: E402
from vizier_omnipred.checkpoints import SHIPPED_TRANSFER  # noqa: E402
from vizier_omnipred.regressor import OmniPredRegressor  # noqa: E402
from vizier_omnipred.relevance import RelevanceConfig, pooled_values  # noqa: E402

HELD_OUT = 40  # random configurations whose ranking is scored
HELD_OUT_SEED = 99
DRAW_SEED = 100  # the study's trials: draw k from seed DRAW_SEED + k
READINGS = ('none', 'prior studies', 'pooled', 'chosen (pooled allowed)', 'mixture')
# The designer's first model-based suggestion reads 5 trials: the choice starts there.
CHOSEN = RelevanceConfig(prior_studies='pooled', prior_min_trials=5)
MIXTURE = RelevanceConfig(prior_studies='mixture')


def _examples(trials) -> list[tuple[dict, float]]:
  return [(t.parameters.as_dict(), next(iter(t.final_measurement.metrics.values())).value)
          for t in trials]


def _predicted_medians(base: OmniPredRegressor, reading: str, task, current, priors, queries):
  relevance = {'chosen (pooled allowed)': CHOSEN, 'mixture': MIXTURE}.get(reading, 'same')
  reg = base.for_new_study(relevance=relevance)
  reg.set_study(task.problem)
  if reading == 'none':
    reg.condition(current)
  elif reading == 'pooled':
    y = pooled_values([np.asarray([v for _, v in p]) for p in priors],
                      np.asarray([v for _, v in current]))
    rows = [r for p in priors for r, _ in p]
    reg.condition(list(zip(rows, y)) + current)
  else:
    reg.condition(current, prior_studies=priors)
  return reg.quantiles(queries, [0.5])[:, 0]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sizes', default='5,10', help="the study's trials read")
  parser.add_argument('--draws', type=int, default=2, help='draws of them per size')
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(',')]
  base = OmniPredRegressor.from_pretrained(SHIPPED_TRANSFER)
  studies = {s.name: s for fam in transfer_families.FAMILIES
             for s in transfer_families.family(fam)}
  related = [c for c in transfer_families.cases() if c[0] == 'related']
  rho: dict[tuple[str, int, str], list[float]] = {}
  bar = tqdm(total=len(related) * len(sizes) * args.draws, desc='pooled priors')
  for case, name, prior_family in related:
    task = studies[name]
    exptr = tuning_tasks.TaskExperimenter(task)
    priors = [_examples(t) for _, _, t in transfer_families.priors(case, name, prior_family)]
    queries = tuning_studies.sample_configurations(task.problem, HELD_OUT,
                                                   np.random.default_rng(HELD_OUT_SEED))
    truth = np.asarray([exptr.score(c) for c in queries])
    for n in sizes:
      for k in range(args.draws):
        configs = tuning_studies.sample_configurations(task.problem, n,
                                                       np.random.default_rng(DRAW_SEED + k))
        current = [(c, exptr.score(c)) for c in configs]
        bar.update()
        if len({v for _, v in current}) < 2:
          continue  # the model reads y by its spread
        for reading in READINGS:
          median = _predicted_medians(base, reading, task, current, priors, queries)
          rho.setdefault((prior_family, n, reading), []).append(
              float(spearmanr(median, truth).correlation))
  bar.close()
  families = sorted({f for f, _, _ in rho})
  lines = ["Ranking a left-out study's configurations with related prior studies read five ways "
           '(shipped transfer checkpoint; Spearman correlation of the predicted medians with the '
           f'truth over {HELD_OUT} random configurations, mean over the family\'s studies and '
           f'{args.draws} draws of the study\'s trials).', '',
           '| family | trials | ' + ' | '.join(READINGS) + ' |',
           '|---|---|' + '---|' * len(READINGS)]
  for fam in families + ['all']:
    for n in sizes:
      cells = [np.nanmean([v for (f, m, r), vals in rho.items() for v in vals
                           if r == reading and m == n and fam in (f, 'all')])
               for reading in READINGS]
      lines.append(f'| {fam} | {n} | ' + ' | '.join(f'{c:.3f}' for c in cells) + ' |')
  lines += ['', f'Command: `python -m benchmarks.experiments.pooled_priors --sizes {args.sizes} '
            f'--draws {args.draws}`.']
  run_store.write_table('pooled_priors', lines)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
