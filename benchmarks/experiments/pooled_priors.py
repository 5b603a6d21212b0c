"""How well does the transfer model rank a left-out study's configurations, reading the
related prior studies in different ways?

    python -m benchmarks.experiments.pooled_priors [--sizes 5,10] [--draws 2] [--checkpoint PATH]

For every related left-out study of the transfer benchmark (`benchmarks.transfer`: the same
scikit-learn model on other datasets, or other instances of one BBOB function; each prior study
30 random trials), the transfer checkpoint (`--checkpoint`; the shipped one) reads `--sizes`
random trials of the study (`--draws` draws of them) and predicts the median of 40 other random
configurations. Read six ways: without the prior studies; with them as prior studies (the
regressor's default); pooled into the study's own trials (each prior study's y mapped by rank
onto the range of the study's y, `relevance.pooled_values`); each study's way chosen by the
held-out likelihood of the study's trials (`RelevanceConfig(prior_studies='pooled')`); an equal
mixture of the second and third readings' predictive distributions (`prior_studies='mixture'`,
the designer's default); and the same two mixed with the pooled reading's weight (1 + rho) / 2,
where rho is Spearman's correlation between the study's y and what the prior studies alone
(pooled, none of the study's trials in context) predict for its trials: equal when they rank
them no better than chance, all pooled when they rank them perfectly (a ranking judge of
transfer, as the ranking loss weighs prior models in Feurer et al. 2018's RGPE). Reported:
Spearman's rank correlation of the predicted medians with the true scores, per family and
overall. If pooling ranks far better where the studies are alike and worse where they are not,
the choice is what decides whether it helps an optimiser.
Writes benchmarks/results/pooled_priors.md.
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
from vizier_omnipred.regressor import MIXTURE_GRID, OmniPredRegressor  # noqa: E402
from vizier_omnipred.relevance import RelevanceConfig, pooled_values  # noqa: E402

HELD_OUT = 40  # random configurations whose ranking is scored
HELD_OUT_SEED = 99
DRAW_SEED = 100  # the study's trials: draw k from seed DRAW_SEED + k
READINGS = ('none', 'prior studies', 'pooled', 'chosen (pooled allowed)', 'mixture',
            'mixture by transfer ranking')
# The designer's first model-based suggestion reads 5 trials: the choice starts there.
CHOSEN = RelevanceConfig(prior_studies='pooled', prior_min_trials=5)
MIXTURE = RelevanceConfig(prior_studies='mixture')
# A weighted mixture's median from each reading's quantiles at this many equally spaced levels
# (as the regressor's `MIXTURE_GRID`).
GRID = (np.arange(MIXTURE_GRID) + 0.5) / MIXTURE_GRID


def _examples(trials) -> list[tuple[dict, float]]:
  return [(t.parameters.as_dict(), next(iter(t.final_measurement.metrics.values())).value)
          for t in trials]


def _regressor(base: OmniPredRegressor, task, relevance='same') -> OmniPredRegressor:
  reg = base.for_new_study(relevance=relevance)
  reg.set_study(task.problem)
  return reg


def _pooled(priors, current) -> list[tuple[dict, float]]:
  """The prior studies' trials, each study's y mapped by rank onto the range of `current`'s."""
  y = pooled_values([np.asarray([v for _, v in p]) for p in priors],
                    np.asarray([v for _, v in current]))
  return list(zip([r for p in priors for r, _ in p], y))


def _weighted_median(quantiles_a: np.ndarray, quantiles_b: np.ndarray, weight_b: float):
  """Per row, the median of the mixture (1 - weight_b) A + weight_b B, from each one's
  quantiles at the GRID levels [n, len(GRID)]."""
  values = np.concatenate([quantiles_a, quantiles_b], axis=1)
  weights = np.concatenate([np.full(len(GRID), (1 - weight_b) / len(GRID)),
                            np.full(len(GRID), weight_b / len(GRID))])
  order = np.argsort(values, axis=1)
  cumulative = np.cumsum(weights[order], axis=1)
  at = np.argmax(cumulative >= 0.5 - 1e-12, axis=1)
  return np.take_along_axis(values, order, axis=1)[np.arange(len(values)), at]


def _transfer_weight(base: OmniPredRegressor, task, current, priors) -> float:
  """(1 + rho) / 2: rho = Spearman's correlation between the study's y and the prior studies'
  prediction of its trials, read with none of them in context (0 when undefined)."""
  alone = _regressor(base, task)
  alone.condition(_pooled(priors, current))
  predicted = alone.quantiles([c for c, _ in current], [0.5])[:, 0]
  rho = spearmanr(predicted, [v for _, v in current]).correlation
  return (1.0 + (0.0 if np.isnan(rho) else float(rho))) / 2


def _predicted_medians(base: OmniPredRegressor, reading: str, task, current, priors, queries,
                       weight: float):
  """`weight`: the pooled reading's in 'mixture by transfer ranking'."""
  if reading == 'mixture by transfer ranking':
    as_priors, pooled = _regressor(base, task), _regressor(base, task)
    as_priors.condition(current, prior_studies=priors)
    pooled.condition(_pooled(priors, current) + current)
    return _weighted_median(as_priors.quantiles(queries, GRID), pooled.quantiles(queries, GRID),
                            weight)
  reg = _regressor(base, task, {'chosen (pooled allowed)': CHOSEN,
                                'mixture': MIXTURE}.get(reading, 'same'))
  if reading == 'none':
    reg.condition(current)
  elif reading == 'pooled':
    reg.condition(_pooled(priors, current) + current)
  else:
    reg.condition(current, prior_studies=priors)
  return reg.quantiles(queries, [0.5])[:, 0]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sizes', default='5,10', help="the study's trials read")
  parser.add_argument('--draws', type=int, default=2, help='draws of them per size')
  parser.add_argument('--checkpoint', default=str(SHIPPED_TRANSFER))
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(',')]
  base = OmniPredRegressor.from_pretrained(args.checkpoint)
  shown = run_store.shown_path(args.checkpoint)
  studies = {s.name: s for fam in transfer_families.FAMILIES
             for s in transfer_families.family(fam)}
  related = [c for c in transfer_families.cases() if c[0] == 'related']
  rho: dict[tuple[str, int, str], list[float]] = {}
  weights: dict[tuple[str, int], list[float]] = {}  # the ranking mixture's pooled weights
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
        weight = _transfer_weight(base, task, current, priors)
        weights.setdefault((prior_family, n), []).append(weight)
        for reading in READINGS:
          median = _predicted_medians(base, reading, task, current, priors, queries, weight)
          rho.setdefault((prior_family, n, reading), []).append(
              float(spearmanr(median, truth).correlation))
  bar.close()
  families = sorted({f for f, _, _ in rho})
  lines = ["Ranking a left-out study's configurations with related prior studies read six ways "
           f'(checkpoint `{shown}`; Spearman correlation of the predicted medians with the '
           f'truth over {HELD_OUT} random configurations, mean over the family\'s studies and '
           f'{args.draws} draws of the study\'s trials); last column: the mean weight of the '
           'pooled reading in the mixture by transfer ranking.', '',
           '| family | trials | ' + ' | '.join(READINGS) + ' | its pooled weight |',
           '|---|---|' + '---|' * (len(READINGS) + 1)]
  for fam in families + ['all']:
    for n in sizes:
      cells = [np.nanmean([v for (f, m, r), vals in rho.items() for v in vals
                           if r == reading and m == n and fam in (f, 'all')])
               for reading in READINGS]
      cells.append(np.mean([v for (f, m), vals in weights.items() for v in vals
                            if m == n and fam in (f, 'all')]))
      lines.append(f'| {fam} | {n} | ' + ' | '.join(f'{c:.3f}' for c in cells) + ' |')
  lines += ['', f'Command: `python -m benchmarks.experiments.pooled_priors --sizes {args.sizes} '
            f'--draws {args.draws}'
            + run_store.checkpoint_flag(args.checkpoint, SHIPPED_TRANSFER) + '`.']
  run_store.write_table('pooled_priors', lines)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
