"""Does averaging over whether the prior studies are related remove what unrelated ones cost?

    python -m benchmarks.experiments.prior_averaging [--families 512] [--sizes 2,5,10,30]

The transfer card's table (`vizier_omnipred/checkpoints/TRANSFER.md`) scores the shipped
transfer model on held-out families of the pretraining prior: the current study at 2-30
trials beside 2 related prior studies of 50 trials, 2 unrelated ones, or none, the same current
trials in all three. It reads unrelated prior studies at a small cost. Here the same families,
many more of them (`--families`, the card's 32 among them), each read three ways, every
parameter read, one view:

- read: the prior studies in context, as the card scores them;
- averaged: `RelevanceConfig(prior_studies='averaged')`, the regressor's Bayesian model
  averaging between that reading and the study alone, weighted by their held-out likelihoods
  of the study's trials (`relevance.averaged_weight`, 5 folds); a query's y tokens are scored
  under the mixture of the two readings' distributions of its whole y;
- none: the study alone.

Reported: mean loss in nats per y token, and each reading's difference from none with a 90%
bootstrap interval over the families (paired: the same current trials). Writes
benchmarks/results/prior_averaging.md and prior_averaging.png.
"""

from __future__ import annotations

import argparse
import pathlib

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from benchmarks import run_store
from vizier_omnipred import checkpoints
from vizier_omnipred.model import OmniPredModel
from vizier_omnipred.pretraining import growth, trainer
from vizier_omnipred.relevance import HeldOutLikelihood, RelevanceConfig, averaged_weight
from vizier_omnipred.serialization import Featurizer

RESULTS = pathlib.Path(__file__).resolve().parents[1] / 'results'
# The card's held-out families come from the transfer run's seed (its last stage's).
CARD_SEED = 11
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
RELATIONS = ('related', 'unrelated')


def _query_nll(model, problem, rows, y, priors, num_context: int) -> np.ndarray:
  """Per query: the NLL of its whole y (nats, summed over its tokens) [num_queries]."""
  inputs, ids = trainer.family_inputs(problem, rows, y, priors, num_context, model.model_config)
  target = torch.as_tensor(ids)
  logits = model(model.to_tensors(inputs), target)
  nll = F.cross_entropy(logits.flatten(0, 1).float(), (target + model.slot_offsets).flatten(),
                        reduction='none')
  return nll.view(target.shape).sum(1).numpy()


def _weight(model, problem, rows, y, priors, num_context: int) -> float:
  """`averaged_weight` of the prior studies, from the study's context trials alone."""
  featurizer = Featurizer(problem, config=model.model_config.featurizer, partial_rows=True)
  prior_rows = [r for p, _ in priors for r in p]
  items = featurizer.featurize(prior_rows + rows[:num_context])
  m = len(prior_rows)
  score = HeldOutLikelihood(model, items.select(np.arange(m, m + num_context)),
                            featurizer.metadata(), y[:num_context], views=1,
                            config=RelevanceConfig(), prior=items.select(np.arange(m)),
                            prior_y=[v for _, v in priors])
  return averaged_weight(score, range(items.names.shape[1]))


def _mixture(weight: float, first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """Per query NLL of y under weight * first + (1 - weight) * second (each an NLL)."""
  with np.errstate(divide='ignore'):
    return -np.logaddexp(np.log(weight) - first, np.log1p(-weight) - second)


def measure(model, cfg: trainer.TrainConfig, sizes, num_families: int) -> dict:
  """-> {size: {'none': [F], (relation, 'read'|'averaged'): [F], (relation, 'weight'): [F]}}
  per family, nats per y token."""
  tokens = model.model_config.y_codec.length
  out = {}
  bar = tqdm(total=len(sizes) * num_families, desc='prior averaging')
  with torch.no_grad():
    for size in sizes:
      cols = {}
      for i in range(num_families):
        draws = {r: trainer.held_out_family(cfg, size, i, r) for r in RELATIONS}
        problem, rows, y, _ = draws['related']  # 'none' is this draw without its priors
        alone = _query_nll(model, problem, rows, y, [], size)
        cols.setdefault('none', []).append(alone.mean() / tokens)
        for relation in RELATIONS:
          problem, rows, y, priors = draws[relation]
          read = _query_nll(model, problem, rows, y, priors, size)
          w = _weight(model, problem, rows, y, priors, size)
          cols.setdefault((relation, 'read'), []).append(read.mean() / tokens)
          cols.setdefault((relation, 'averaged'), []).append(
              _mixture(w, read, alone).mean() / tokens)
          cols.setdefault((relation, 'weight'), []).append(w)
        bar.update(1)
      out[size] = {k: np.asarray(v) for k, v in cols.items()}
  bar.close()
  return out


def _interval(diff: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
  idx = rng.integers(0, len(diff), (BOOTSTRAP, len(diff)))
  means = diff[idx].mean(axis=1)
  return float(np.quantile(means, 0.05)), float(np.quantile(means, 0.95))


def table(results: dict, num_families: int, checkpoint: str, flags: str = '') -> str:
  """The results as markdown; `flags`: the command's other flags (checkpoint, output)."""
  rng = np.random.default_rng(BOOTSTRAP_SEED)
  lines = [
      f'Held-out families of the transfer prior (the card\'s, {num_families} of them, seed '
      f'{CARD_SEED}): the current study beside 2 related prior studies of 50 trials, 2 '
      'unrelated ones, or none, the same current trials in all three; checkpoint '
      f'`{checkpoint}`; every parameter read, one view. Read: the prior studies in context '
      '(as the card\'s held-out table); averaged: `RelevanceConfig(prior_studies=\'averaged\')`,'
      ' the mixture of that reading and the study alone weighted by their held-out likelihoods '
      'of the study\'s trials (`relevance.averaged_weight`). Loss in nats per y token (lower is '
      'better); in brackets each reading minus none, 90% bootstrap interval over the families.',
      '',
      '| current-study trials | none | related, read | related, averaged | unrelated, read '
      '| unrelated, averaged | weight of the prior studies, related / unrelated |',
      '|---|---|---|---|---|---|---|']
  for size, cols in results.items():
    none = cols['none']
    cells = [f'{none.mean():.4f}']
    for relation in RELATIONS:
      for how in ('read', 'averaged'):
        diff = cols[relation, how] - none
        lo, hi = _interval(diff, rng)
        cells.append(f'{cols[relation, how].mean():.4f} ({diff.mean():+.4f} [{lo:+.4f}, '
                     f'{hi:+.4f}])')
    cells.append(f'{cols["related", "weight"].mean():.2f} / {cols["unrelated", "weight"].mean():.2f}')
    lines.append(f'| {size} | ' + ' | '.join(cells) + ' |')
  lines += ['', f'`python -m benchmarks.experiments.prior_averaging --families {num_families}'
            f' --sizes {",".join(map(str, results))}{flags}`']
  return '\n'.join(lines) + '\n'


def plot(results: dict, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  sizes = list(results)
  fig, ax = plt.subplots(figsize=(6, 3.8))
  for relation, colour in zip(RELATIONS, ('tab:blue', 'tab:red')):
    for how, style in (('read', '--'), ('averaged', '-')):
      diff = [results[k][relation, how] - results[k]['none'] for k in sizes]
      mean = [d.mean() for d in diff]
      err = 1.645 * np.array([d.std(ddof=1) / np.sqrt(len(d)) for d in diff])
      ax.errorbar(sizes, mean, yerr=err, linestyle=style, color=colour, marker='o', capsize=3,
                  label=f'{relation} prior studies, {how}')
  ax.axhline(0.0, color='k', linewidth=0.8)
  ax.set_xscale('log')
  ax.minorticks_off()
  ax.set_xticks(sizes, [str(k) for k in sizes])
  ax.set_xlabel('current-study trials')
  ax.set_ylabel('loss minus the study alone (nats / y token)')
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def run(argv, description: str, *, families: int, out: str, measure_fn, table_fn,
        plot_fn=None) -> int:
  """The command line of an experiment on the card's held-out families (this one's and
  `prior_names`'): --families, --sizes, --checkpoint, --current-slots, --out; writes
  RESULTS/<out>.md (and .png with `plot_fn`) from `measure_fn(model, cfg, sizes, families)` and
  `table_fn(results, families, checkpoint, flags)`."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument('--families', type=int, default=families)
  parser.add_argument('--sizes', default='2,5,10,30')
  parser.add_argument('--checkpoint', default=str(checkpoints.SHIPPED_TRANSFER))
  parser.add_argument('--out', default=out, help='results file stem')
  parser.add_argument('--current-slots', action='store_true',
                      help='the checkpoint with ModelConfig.current_slots switched on (slots '
                           'ranked among the current study\'s names only)')
  args = parser.parse_args(argv)
  torch.set_num_threads(1)
  model, _ = checkpoints.load(args.checkpoint)
  if args.current_slots and not model.model_config.current_slots:
    switched = OmniPredModel(attrs.evolve(model.model_config, current_slots=True))
    growth.load_grown(switched, model)  # no weight added: the same weights, slots re-ranked
    model = switched.eval()
  cfg = trainer.TrainConfig(model=model.model_config, seed=CARD_SEED)
  results = measure_fn(model, cfg, [int(k) for k in args.sizes.split(',')], args.families)
  shown = run_store.shown_path(args.checkpoint)
  flags = (run_store.checkpoint_flag(args.checkpoint, checkpoints.SHIPPED_TRANSFER)
           + ' --current-slots' * args.current_slots
           + f' --out {args.out}' * (args.out != out))
  label = shown + ', with current_slots switched on' * args.current_slots
  text = table_fn(results, args.families, label, flags)
  (RESULTS / f'{args.out}.md').write_text(text)
  if plot_fn is not None:
    plot_fn(results, RESULTS / f'{args.out}.png')
  print(text)
  return 0


def main(argv=None) -> int:
  return run(argv, __doc__.split('\n')[0], families=512, out='prior_averaging',
             measure_fn=measure, table_fn=table, plot_fn=plot)


if __name__ == '__main__':
  raise SystemExit(main())
