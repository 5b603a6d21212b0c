"""Linear probes: what the surrogate's trial token still holds of a trial's coordinates, by
dimension, and what the loss would cost a GP.

    python -m benchmarks.trial_probe                                  # the shipped checkpoint
    python -m benchmarks.trial_probe --candidate new=PATH.pt          # beside another

The LM reads a trial as ONE token: its parameter items embedded, pooled and mixed. Attention
between trials can only compare what that token keeps, so if a trial's coordinates cannot be
read back from it, in-context regression degrades to averaging neighbours however good the
encoder is. The probe, on shifted Sphere studies (the regression benchmark's `dims` set,
seed 0; x uniform in [-5, 5]^d): every x_j from the trial token (before the encoder) by a ridge
regression scored by 5-fold R^2 over 330 trials; mean and worst over j. (Not y from the
query's final state: a ridge fitted on 264 labelled queries regresses y from any rich
features of x by itself, so it would measure the probe, not the model.)

R^2 1 means nothing is lost (for that linear read). And what such a loss costs: the
GP row fits the regression benchmark's GP (Matern 5/2) at 30 points on the dims set's studies
(3 seeds) with Gaussian noise added to every input, sized so that a linear read of x has the
token's mean R^2 (noise variance (1 - R^2) / R^2 of x's). Compare it with the LM's own error
in benchmarks/results/regression_dims.md.
Writes benchmarks/results/trial_probe.{md,png}.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from benchmarks import process_setup

process_setup.prepare()  # before torch loads

import attrs  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import regression_studies as regression  # noqa: E402
from benchmarks.run_store import RESULTS  # noqa: E402
from vizier_omnipred import checkpoints, episodes  # noqa: E402
from vizier_omnipred.serialization import Featurizer  # noqa: E402
DIMS = (1, 2, 3, 4, 6, 8, 12)
NUM_CONTEXT = 30  # the regression benchmark's middle size (the z-scores use its statistics)
NUM_QUERIES = 300  # with the context, enough trials for a 129-feature ridge
FOLDS = 5
RIDGE = 1e-2  # on features of unit scale (layer-normed tokens): a light regulariser


def cv_r2(features: np.ndarray, target: np.ndarray) -> float:
  """Mean over `FOLDS` contiguous folds of the held-out R^2 of a ridge fit with intercept."""
  x = np.c_[features, np.ones(len(features))]
  scores = []
  for fold in np.array_split(np.arange(len(target)), FOLDS):
    train = np.setdiff1d(np.arange(len(target)), fold)
    w = np.linalg.solve(x[train].T @ x[train] + RIDGE * np.eye(x.shape[1]),
                        x[train].T @ target[train])
    residual = target[fold] - x[fold] @ w
    scores.append(1 - (residual ** 2).sum() / ((target[fold] - target[fold].mean()) ** 2).sum())
  return float(np.mean(scores))


def probe(model, dim: int) -> dict:
  study = regression.bbob_studies(('Sphere',), (dim,), seed=0)[0]
  split = study.split(NUM_CONTEXT + NUM_QUERIES - regression.BBOB_NUM_TEST)
  rows = list(split.rows) + list(split.test_rows)
  x = np.r_[split.x, split.test_x]
  y = np.r_[split.y, split.test_y]
  cfg = model.model_config
  fz = Featurizer(study.problem, config=cfg.featurizer)
  inputs, _ = episodes.episode(fz.featurize(rows), fz.metadata(), y, NUM_CONTEXT, cfg.y_codec)
  with torch.no_grad():
    tokens = model.trial_tokens(model.to_tensors(inputs))[0].numpy()
  coords = [cv_r2(tokens, x[:, j]) for j in range(dim)]
  return {'coord_mean': float(np.mean(coords)), 'coord_min': float(np.min(coords))}


def gp_with_noisy_inputs(dim: int, r2: float, n: int = 30) -> float:
  """Mean study error of the benchmark's GP over the dims set's seeds at `n` points, every
  input (train and test) noised so that a linear read of it has R^2 `r2`."""
  gp = regression.sklearn_methods(0)['GP (Matern 5/2)']
  errors = []
  for seed in regression.DIMS_SET['seeds']:
    study = regression.bbob_studies(('Sphere',), (dim,), seed=seed)[0]
    data = study.split(n)
    scale = np.sqrt(max(1.0 - r2, 0.0) / r2) * data.x.std(0)
    rng = np.random.default_rng([dim, seed])
    noisy = attrs.evolve(data, x=data.x + scale * rng.normal(size=data.x.shape),
                         test_x=data.test_x + scale * rng.normal(size=data.test_x.shape))
    fit = gp(study, noisy)
    errors.append(regression.study_error(fit.median, data.test_y, np.r_[data.y, data.test_y]))
  return float(np.mean(errors))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--checkpoint', default=None, help='default: the shipped checkpoint')
  parser.add_argument('--candidate', action='append', default=[], metavar='TAG=PATH',
                      help='another checkpoint, probed beside the first (repeatable)')
  parser.add_argument('--out', default=str(RESULTS / 'trial_probe'))
  args = parser.parse_args(argv)
  torch.set_num_threads(1)
  models = {'shipped' if args.checkpoint is None else pathlib.Path(args.checkpoint).stem:
            args.checkpoint}
  for spec in args.candidate:
    tag, sep, path = spec.partition('=')
    if not sep or not tag or not path:
      parser.error(f'--candidate {spec!r}: expected TAG=PATH')
    checkpoints.check_file(path)
    models[tag] = path
  results = {}
  for tag, path in models.items():
    model, card = checkpoints.load(path)
    results[tag] = [probe(model, d) for d in DIMS]
    for d, r in zip(DIMS, results[tag]):
      r['gp_noisy'] = gp_with_noisy_inputs(d, r['coord_mean'])
    print(tag, card.get('steps'), 'steps:',
          ' '.join(f"{d}-D {r['coord_mean']:.3f}/{r['coord_min']:.3f}"
                   for d, r in zip(DIMS, results[tag])))
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix('.md').write_text(table(results, models))
  plot(results, out.with_suffix('.png'))
  print(f'-> {out}.md, {out}.png')
  return 0


def table(results: dict, models: dict) -> str:
  head = '| checkpoint | probe | ' + ' | '.join(f'{d}-D' for d in DIMS) + ' |\n'
  head += '|---|---|' + '---|' * len(DIMS) + '\n'
  rows = []
  for tag, per_dim in results.items():
    for key, label in (('coord_mean', 'x_j from trial token, mean R2'),
                       ('coord_min', 'x_j from trial token, worst R2'),
                       ('gp_noisy', 'GP study error @ 30, inputs noised to the mean R2')):
      rows.append(f'| {tag} | {label} | ' + ' | '.join(f'{r[key]:.3f}' for r in per_dim) + ' |')
  command = 'python -m benchmarks.trial_probe' + ''.join(
      f' --candidate {t}={p}' for t, p in list(models.items())[1:])
  return ('Linear probes (5-fold ridge R2) on shifted Sphere studies, seed 0, 30 context + 300'
          ' query trials; see the docstring of benchmarks/trial_probe.py.\n\n' + head
          + '\n'.join(rows) + f'\n\nCommand: `{command}`\n')


def plot(results: dict, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for tag, per_dim in results.items():
    line, = axes[0].plot(DIMS, [r['coord_mean'] for r in per_dim], marker='o', label=f'{tag} mean')
    axes[0].plot(DIMS, [r['coord_min'] for r in per_dim], marker='v', ls='--',
                 color=line.get_color(), label=f'{tag} worst')
    axes[1].plot(DIMS, [r['gp_noisy'] for r in per_dim], marker='o', label=tag)
  axes[0].set_title('coordinates from the trial token (R2)', fontsize=10)
  axes[1].set_title('GP study error @ 30 on inputs this blurred', fontsize=10)
  for ax in axes:
    ax.set_xlabel('dimension')
    ax.set_xticks(DIMS)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


if __name__ == '__main__':
  sys.exit(main())
