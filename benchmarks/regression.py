"""Regression benchmark: OmniPred's "study error" on shifted BBOB studies.

    python benchmarks/regression.py            # full: 5 held-out functions x dims 2/4/8
    python benchmarks/regression.py --quick    # a minute: 2 functions, 2-D, 1 seed

Every study is a BBOB function held out from pretraining (vizier.benchmarks), its optimum
shifted, x0..x{d-1} in [-5, 5]. For each training size (10/30/100 uniform points) every method
fits the same points and predicts the same 100 held-out points.

  study error = mean over test points of min(|prediction - y| / (y_max - y_min), 1)
  (OmniPred, Song et al. 2024; y range over the study's train + test points)

Methods: pretrained + LoRA, pretrained without fine-tuning (train y only sets the affine
y scale), the same LM trained from scratch on the study alone, and scikit-learn's random
forest, GP (Matern 5/2 + noise) and MLP. Writes benchmarks/results/regression.{md,png}.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import warnings

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: E402
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel  # noqa: E402
from sklearn.neural_network import MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier._src.benchmarks.experimenters.synthetic import bbob  # noqa: E402

from vizier_omnipred import FineTuneConfig, OmniPredRegressor, YScaler  # noqa: E402
from vizier_omnipred.pretraining.corpus import HELD_OUT_FUNCTIONS  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / 'results'
NUM_TEST = 100


def make_study(function: str, dim: int, seed: int, n_train: int):
  """Uniform train/test points of a shifted BBOB function: (X_train, y_train, X_test, y_test)."""
  rng = np.random.default_rng([seed, dim, n_train, len(function)])
  shift = np.random.default_rng([seed, dim]).uniform(-4, 4, dim)
  fn = getattr(bbob, function)
  x = rng.uniform(-5, 5, (n_train + NUM_TEST, dim))
  y = np.asarray([float(np.real(fn(xi - shift, seed=seed))) for xi in x])
  return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def study_error(pred: np.ndarray, y_test: np.ndarray, y_all: np.ndarray) -> float:
  span = float(np.ptp(y_all)) or 1.0
  return float(np.mean(np.minimum(np.abs(pred - y_test) / span, 1.0)))


def _rows(x: np.ndarray) -> list[dict]:
  return [{f'x{j}': float(v) for j, v in enumerate(row)} for row in x]


def _problem(dim: int):
  return bbob.DefaultBBOBProblemStatement(dim)


class LMMethod:
  """One of the OmniPred rows; `base` is shared, every study gets a fresh fine-tuning."""

  def __init__(self, name: str, base: OmniPredRegressor | None, mode: str, seed: int = 0,
               model_config=None):
    self.name, self.base, self.mode, self.seed = name, base, mode, seed
    self.model_config = model_config  # for 'scratch': the size to train from random weights

  def __call__(self, xtr, ytr, xte, dim):
    problem = _problem(dim)
    if self.mode == 'scratch':
      reg = OmniPredRegressor.from_scratch(self.model_config, seed=self.seed)
      reg.fine_tune(list(zip(_rows(xtr), ytr)), problem=problem,
                    config=FineTuneConfig(method='full', learning_rate=1e-3, max_steps=500))
    else:
      reg = OmniPredRegressor(self.base.base, card=self.base.card)
      if self.mode == 'lora':
        reg.fine_tune(list(zip(_rows(xtr), ytr)), problem=problem, config=FineTuneConfig())
      else:  # zero-shot: weights untouched, train y only fixes the affine y scale
        reg.set_study(problem)
        reg.y_scaler = YScaler.fit(ytr)
    return reg.predict(_rows(xte), num_samples=64).median


def sklearn_methods(seed: int) -> dict:
  def rf(xtr, ytr, xte, dim):
    return RandomForestRegressor(200, random_state=seed).fit(xtr, ytr).predict(xte)

  def gp(xtr, ytr, xte, dim):
    kernel = ConstantKernel() * Matern(length_scale=np.ones(dim), nu=2.5) + WhiteKernel(1e-3)
    model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                     random_state=seed)
    return model.fit(xtr, ytr).predict(xte)

  def mlp(xtr, ytr, xte, dim):
    mu, sd = ytr.mean(), ytr.std() or 1.0
    model = make_pipeline(StandardScaler(), MLPRegressor(
        hidden_layer_sizes=(64, 64), max_iter=3000, early_stopping=len(ytr) >= 30, random_state=seed))
    return model.fit(xtr, (ytr - mu) / sd).predict(xte) * sd + mu

  return {'random forest': rf, 'GP (Matern 5/2)': gp, 'MLP': mlp}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--checkpoint', default=None, help='default: the shipped checkpoint')
  parser.add_argument('--out', default=str(RESULTS / 'regression'))
  args = parser.parse_args(argv)
  functions = HELD_OUT_FUNCTIONS[:2] if args.quick else HELD_OUT_FUNCTIONS
  dims = (2,) if args.quick else (2, 4, 8)
  seeds = (0,)
  sizes = (10, 30, 100)

  methods: dict = {}
  try:
    pretrained = OmniPredRegressor.from_pretrained(args.checkpoint)
    methods['pretrained + LoRA'] = LMMethod('pretrained + LoRA', pretrained, 'lora')
    methods['pretrained, no fine-tuning'] = LMMethod('zero-shot', pretrained, 'zero')
    model_config = pretrained.base.model_config
  except FileNotFoundError as e:
    print(f'(no pretrained rows: {e})')
    from vizier_omnipred import ModelConfig  # pylint: disable=g-import-not-at-top
    model_config = ModelConfig(encoder_layers=3)
  methods['single-task LM from scratch'] = LMMethod(
      'single-task from scratch', None, 'scratch', model_config=model_config)
  methods.update(sklearn_methods(0))

  jobs = [(f, d, s, n) for f in functions for d in dims for s in seeds for n in sizes]
  records = []
  warnings.filterwarnings('ignore', category=ConvergenceWarning)
  warnings.filterwarnings('ignore', module='sklearn')
  for f, d, s, n in tqdm(jobs, desc='studies', dynamic_ncols=True):
    xtr, ytr, xte, yte = make_study(f, d, s, n)
    y_all = np.concatenate([ytr, yte])
    for name, method in methods.items():
      t0 = time.perf_counter()
      pred = method(xtr, ytr, xte, d)
      records.append(dict(method=name, function=f, dim=d, seed=s, n=n,
                          error=study_error(pred, yte, y_all),
                          spearman=float(stats.spearmanr(pred, yte).statistic),
                          seconds=time.perf_counter() - t0))
  write_results(records, methods, sizes, args, model_config)
  return 0


def write_results(records, methods, sizes, args, model_config) -> None:
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)

  def agg(name, n, key):
    vals = [r[key] for r in records if r['method'] == name and r['n'] == n]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float('nan')

  num_studies = len({(r['function'], r['dim'], r['seed']) for r in records})
  lines = [
      f'Study error (lower is better) and Spearman rank correlation (higher is better) on '
      f'{num_studies} shifted held-out BBOB studies per training size '
      f'({", ".join(sorted({r["function"] for r in records}))}; dims '
      f'{sorted({r["dim"] for r in records})}; seeds {sorted({r["seed"] for r in records})}), '
      f'{NUM_TEST} test points each.',
      '',
      '| method | ' + ' | '.join(f'error @ {n}' for n in sizes) + ' | '
      + ' | '.join(f'Spearman @ {n}' for n in sizes) + ' | s / fit @ 30 |',
      '|---|' + '---|' * (2 * len(sizes) + 1),
  ]
  for name in methods:
    errs = ' | '.join(f'{agg(name, n, "error"):.3f}' for n in sizes)
    rhos = ' | '.join(f'{agg(name, n, "spearman"):.3f}' for n in sizes)
    lines.append(f'| {name} | {errs} | {rhos} | {agg(name, 30, "seconds"):.2f} |')
  lines += ['', f'Command: `python benchmarks/regression.py{" --quick" if args.quick else ""}`'
            f'; LM size d_model={model_config.d_model}, '
            f'{model_config.encoder_layers}+{model_config.decoder_layers} layers.']
  if '--quick' not in sys.argv:
    lines += ['', '### Study error at 30 training points, by function', '',
              '| method | ' + ' | '.join(sorted({r['function'] for r in records})) + ' |',
              '|---|' + '---|' * len({r['function'] for r in records})]
    for name in methods:
      cells = []
      for f in sorted({r['function'] for r in records}):
        vals = [r['error'] for r in records if r['method'] == name and r['n'] == 30
                and r['function'] == f]
        cells.append(f'{np.mean(vals):.3f}')
      lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
  print('\n'.join(lines))

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for name in methods:
    axes[0].plot(sizes, [agg(name, n, 'error') for n in sizes], marker='o', label=name)
    axes[1].plot(sizes, [agg(name, n, 'spearman') for n in sizes], marker='o', label=name)
  for ax, title in zip(axes, ('study error (lower is better)', 'Spearman (higher is better)')):
    ax.set_xscale('log')
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel('training points')
    ax.set_title(title)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle(f'Regression on {num_studies} shifted held-out BBOB studies')
  fig.tight_layout()
  fig.savefig(out.with_suffix('.png'), dpi=120)
  print(f'wrote {out.with_suffix(".md")} and {out.with_suffix(".png")}')


if __name__ == '__main__':
  sys.exit(main())
