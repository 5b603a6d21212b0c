"""Is what unrelated prior studies cost in the names they share with the current study?

    python -m benchmarks.experiments.prior_names [--families 256] [--checkpoint PATH]

The transfer model reads unrelated prior studies at a small cost (`prior_averaging.md`). Half
of the pretraining prior's unrelated prior studies are over the current study's own parameter
names (another function of the same parameters), and parameters are standardised over every
context trial, prior ones included (`StudyInputs.build`): a shared name could carry the cost.
Here the card's held-out families (as `prior_averaging`) are read with their 2 prior studies as
drawn, and again with every prior-study parameter renamed (`other_<name>`, declared in the
search space), so that no prior study shares a name with the current study: whatever the prior
studies then cost is their mere presence in the context. Related prior studies renamed show
what the names carry of the gain.

Reported: each reading's loss minus the study alone, nats per y token, 90% bootstrap interval
over the families (paired: the same current trials). Writes benchmarks/results/<out>.md.
"""

from __future__ import annotations

import copy

import attr
import numpy as np
import torch
from tqdm.auto import tqdm

from benchmarks.experiments import prior_averaging
from benchmarks.experiments.prior_averaging import CARD_SEED, _interval, _query_nll
from vizier_omnipred.pretraining import trainer

RELATIONS = ('related', 'unrelated')
PREFIX = 'other_'  # a renamed prior-study parameter: no current-study name starts with it
BOOTSTRAP_SEED = 0


def renamed(problem, priors):
  """The problem with every parameter also declared as PREFIX + name, and the prior studies
  over those names only."""
  wide = copy.deepcopy(problem)
  for config in list(problem.search_space.parameters):
    wide.search_space.add(attr.evolve(config, name=PREFIX + config.name))
  return wide, [([{PREFIX + k: v for k, v in row.items()} for row in rows], y)
                for rows, y in priors]


def measure(model, cfg: trainer.TrainConfig, sizes, num_families: int) -> dict:
  """-> {size: {'none' | (relation, 'as drawn' | 'renamed'): [F] nats per y token}}."""
  tokens = model.model_config.y_codec.length
  out = {}
  bar = tqdm(total=len(sizes) * num_families, desc='prior names')
  with torch.no_grad():
    for size in sizes:
      cols: dict = {}
      for i in range(num_families):
        for relation in RELATIONS:
          problem, rows, y, priors = trainer.held_out_family(cfg, size, i, relation)
          if relation == RELATIONS[0]:  # the current trials are the same in both draws
            cols.setdefault('none', []).append(
                _query_nll(model, problem, rows, y, [], size).mean() / tokens)
          wide, other = renamed(problem, priors)
          for how, (p, pr) in (('as drawn', (problem, priors)), ('renamed', (wide, other))):
            cols.setdefault((relation, how), []).append(
                _query_nll(model, p, rows, y, pr, size).mean() / tokens)
        bar.update(1)
      out[size] = {k: np.asarray(v) for k, v in cols.items()}
  bar.close()
  return out


def table(results: dict, num_families: int, checkpoint: str, flags: str = '') -> str:
  """The results as markdown; `flags`: the command's other flags (checkpoint, output)."""
  rng = np.random.default_rng(BOOTSTRAP_SEED)
  columns = [(r, how) for r in RELATIONS for how in ('as drawn', 'renamed')]
  lines = [
      f'Held-out families of the transfer prior (the card\'s, {num_families} of them, seed '
      f'{CARD_SEED}), checkpoint `{checkpoint}`: the current study beside 2 prior studies of 50 '
      'trials, as drawn or with every prior-study parameter renamed (no name shared with the '
      'current study). Loss minus the study alone in nats per y token, 90% bootstrap interval '
      'over the families.', '',
      '| current-study trials | none | ' + ' | '.join(f'{r}, {h}' for r, h in columns) + ' |',
      '|---|---|' + '---|' * len(columns)]
  for size, cols in results.items():
    cells = [f'{cols["none"].mean():.4f}']
    for key in columns:
      diff = cols[key] - cols['none']
      lo, hi = _interval(diff, rng)
      cells.append(f'{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]')
    lines.append(f'| {size} | ' + ' | '.join(cells) + ' |')
  lines += ['', f'`python -m benchmarks.experiments.prior_names --families {num_families}'
            f' --sizes {",".join(map(str, results))}{flags}`']
  return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
  return prior_averaging.run(argv, __doc__.split('\n')[0], families=256, out='prior_names',
                             measure_fn=measure, table_fn=table)


if __name__ == '__main__':
  raise SystemExit(main())
