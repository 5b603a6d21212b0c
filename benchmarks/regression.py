"""Regression benchmark: OmniPred's "study error" on three sets of held-out studies.

    python benchmarks/regression.py            # full: 15 BBOB + 15 GP + 5 tuning studies
    python benchmarks/regression.py --quick    # a few minutes: fewer studies
    python benchmarks/regression.py --sets dims --out benchmarks/results/regression_dims

Study sets (none of them seen in pretraining):
  bbob:   BBOB functions held out from pretraining (vizier.benchmarks), optimum shifted,
          x0..x{d-1} uniform in [-5, 5], dims 2/4/8.
  gp:     functions drawn from the GP prior (`pretraining.gp_prior`) with seeds pretraining
          never draws, dims 2/4/8.
  tuning: real tuning studies with mixed parameter types: scikit-learn models on datasets
          that ship with scikit-learn (`tuning_studies.py`: SVM, decision tree, k-NN, elastic
          net, gradient boosting; log/linear DOUBLE, INTEGER, DISCRETE, CATEGORICAL).
  dims:   (not in the default run) shifted Sphere, a function family pretraining DOES draw,
          at 1/2/3/4/6/8-D x 3 seeds: how far in-context regression reaches with dimension.
  sparse: (not in the default run) the held-out BBOB functions of 2 parameters, among 2, 4
          or 8 that all vary: can the model find the ones that matter from the trials?
A GP-prior or tuning study is one pool of points: methods fit the first 10/30/100 and predict
its last 50. A BBOB study draws uniform points per training size from fixed seeds, 100 test
points (`bbob_studies`).

  study error = mean over test points of min(|prediction - y| / (y_max - y_min), 1)
  (OmniPred, Song et al. 2024; y range over the study's train + test points)
  coverage    = share of test y inside the method's 10-90% predictive interval (ideal 0.8)

Methods: the in-context LM zero-shot (the trials are its context, no weight changes; each
prediction the mean of `--views` views of the study, `OmniPredRegressor.views`; it reads the
parameters its held-out likelihood keeps, `OmniPredRegressor.relevance`), the same reading
every parameter, the same from one view (the model as trained, no ensemble), the same plus
test-time LoRA, and
scikit-learn's random forest, GP (Matern 5/2 + noise, ARD) and
MLP, and a Nadaraya-Watson kernel smoother (bandwidth by leave-one-out: local averaging);
the baselines read log parameters as log10 and categories one-hot. A last row predicts the
training points' median everywhere: the error of knowing nothing about x.
Writes benchmarks/results/regression.{md,png}.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings
from typing import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import vizier_omnipred  # noqa: E402,F401  # first: sets OMP_WAIT_POLICY before torch loads
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import attrs  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import special, stats  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: E402
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel  # noqa: E402
from sklearn.neural_network import MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402
from vizier._src.benchmarks.experimenters.synthetic import bbob  # noqa: E402

import tuning_studies  # noqa: E402
from vizier_omnipred import FineTuneConfig, OmniPredRegressor  # noqa: E402
from vizier_omnipred.pretraining.corpus import EVAL_SEED_OFFSET, HELD_OUT_FUNCTIONS  # noqa: E402
from vizier_omnipred.pretraining.gp_prior import GPFunction  # noqa: E402
from vizier_omnipred.regressor import DEFAULT_VIEWS  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / 'results'
NUM_TEST = 50  # GP-prior and tuning studies; BBOB studies have 100 (`bbob_studies`)
BBOB_NUM_TEST = 100
SIZES = (10, 30, 100)
DIMS_SET = dict(dims=(1, 2, 3, 4, 6, 8), seeds=(0, 1, 2))  # `--sets dims`
SPARSE_SET = dict(dims=(2, 4, 8), effective=2)  # `--sets sparse`: 2 of d parameters matter
DEFAULT_SETS = 'bbob,gp,tuning'
SMOOTHER_BANDWIDTHS = np.geomspace(0.05, 5.0, 40)  # in standard deviations of each input
Z90 = stats.norm.ppf(0.9)  # a Gaussian's 90% quantile in standard deviations
# Test-time LoRA in the benchmark: a fit from the base per study.
LORA = FineTuneConfig(max_steps=40)


@attrs.frozen
class Split:
  """Training and test points of one study at one training size; x: the baselines' numeric
  features [n, k], rows: the same points as parameter dicts (what the LM reads)."""

  rows: list
  y: np.ndarray
  x: np.ndarray
  test_rows: list
  test_y: np.ndarray
  test_x: np.ndarray


@attrs.frozen
class Study:
  """One held-out study: its problem and its points at each training size."""

  family: str  # 'bbob', 'gp' or 'tuning'
  name: str
  dim: int
  problem: vz.ProblemStatement
  split: Callable[[int], Split]


def _pooled(rows: list, y: np.ndarray, x: np.ndarray) -> Callable[[int], Split]:
  """Nested training sets from one pool: the first n points; the last NUM_TEST to test."""
  def split(n: int) -> Split:
    return Split(rows[:n], y[:n], x[:n], rows[-NUM_TEST:], y[-NUM_TEST:], x[-NUM_TEST:])
  return split


def _xrows(x: np.ndarray) -> list[dict]:
  return [{f'x{j}': float(v) for j, v in enumerate(row)} for row in x]


def bbob_studies(functions, dims, seed=0, *, effective: int | None = None) -> list[Study]:
  """Fixed studies: one shift per (seed, dim) and, for each training size, uniform points
  drawn from fixed seeds (BBOB_NUM_TEST test points).

  `effective`: the function reads only that many of the d parameters (which ones drawn per
  study), the rest vary and do nothing: a study of low effective dimension, as tuning
  studies often are (the `sparse` set)."""
  out = []
  for f in functions:
    for d in dims:
      k = d if effective is None else effective
      shift = np.random.default_rng([seed, d]).uniform(-4, 4, k)
      read = (np.arange(d) if effective is None
              else np.sort(np.random.default_rng([seed, d, k]).choice(d, k, replace=False)))
      fn = getattr(bbob, f)

      def split(n, f=f, d=d, fn=fn, shift=shift, read=read):
        rng = np.random.default_rng([seed, d, n, len(f)])
        x = rng.uniform(-5, 5, (n + BBOB_NUM_TEST, d))
        y = np.asarray([float(np.real(fn(xi[read] - shift, seed=seed))) for xi in x])
        rows = _xrows(x)
        return Split(rows[:n], y[:n], x[:n], rows[n:], y[n:], x[n:])
      name = f'{f} {d}-D' if effective is None else f'{f} {k} of {d}'
      out.append(Study('bbob' if effective is None else 'sparse', name, d,
                       bbob.DefaultBBOBProblemStatement(d), split))
  return out


def gp_studies(seeds, dims) -> list[Study]:
  out = []
  for s in seeds:
    for d in dims:
      rng = np.random.default_rng([EVAL_SEED_OFFSET, s, d])
      fn = GPFunction.draw(d, rng)
      u = rng.uniform(0, 1, (max(SIZES) + NUM_TEST, d))
      x = -5 + 10 * u
      out.append(Study('gp', f'GP {fn.kernel} {d}-D #{s}', d, bbob.DefaultBBOBProblemStatement(d),
                       _pooled(_xrows(x), fn.sample(u, rng), x)))
  return out


def tuning_study_set(names=None) -> list[Study]:
  out = []
  chosen = [t for t in tuning_studies.studies() if names is None or t.name in names]
  with tqdm(total=0, desc='tuning studies (cached after the first run)', disable=None) as bar:
    for t in chosen:
      rows, y = tuning_studies.evaluated(t, max(SIZES) + NUM_TEST, 0, progress=bar)
      out.append(Study('tuning', t.name, len(t.problem.search_space.parameters), t.problem,
                       _pooled(rows, y, tuning_studies.numeric_features(t.problem, rows))))
  return out


def study_error(pred: np.ndarray, y_test: np.ndarray, y_all: np.ndarray) -> float:
  span = float(np.ptp(y_all)) or 1.0
  return float(np.mean(np.minimum(np.abs(pred - y_test) / span, 1.0)))


@attrs.frozen
class Fit:
  """A method's prediction for the test points: median and 10/90% quantiles (None: no
  predictive distribution)."""

  median: np.ndarray
  lo: np.ndarray | None = None
  hi: np.ndarray | None = None


class LMMethod:
  """An in-context LM row; `base` is shared, each study gets its own regressor."""

  def __init__(self, base: OmniPredRegressor, lora: FineTuneConfig | None):
    self.base, self.lora = base, lora

  def __call__(self, study: Study, data: Split) -> Fit:
    reg = self.base.for_new_study()
    train = list(zip(data.rows, data.y))
    if self.lora is None:
      reg.condition(train, problem=study.problem)
    else:
      reg.fine_tune(train, problem=study.problem, config=self.lora)
    p = reg.predict(data.test_rows, num_samples=64, quantiles=(0.1, 0.5, 0.9))
    return Fit(p.median, p.quantiles[:, 0], p.quantiles[:, 2])


def sklearn_methods(seed: int) -> dict:
  def rf(study, data):
    model = RandomForestRegressor(200, random_state=seed).fit(data.x, data.y)
    trees = np.stack([t.predict(data.test_x) for t in model.estimators_])
    return Fit(model.predict(data.test_x), *np.quantile(trees, [0.1, 0.9], axis=0))

  def gp(study, data):
    scaler = StandardScaler().fit(data.x)
    kernel = (ConstantKernel() * Matern(length_scale=np.ones(data.x.shape[1]), nu=2.5)
              + WhiteKernel(1e-3))
    model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                     random_state=seed)
    model.fit(scaler.transform(data.x), data.y)
    mean, sd = model.predict(scaler.transform(data.test_x), return_std=True)
    return Fit(mean, mean - Z90 * sd, mean + Z90 * sd)

  def mlp(study, data):
    n = len(data.y)
    mu, sd = data.y.mean(), data.y.std() or 1.0
    model = make_pipeline(StandardScaler(), MLPRegressor(
        hidden_layer_sizes=(64, 64), max_iter=3000, early_stopping=n >= 30, random_state=seed))
    return Fit(model.fit(data.x, (data.y - mu) / sd).predict(data.test_x) * sd + mu)

  def smoother(study, data):
    # Nadaraya-Watson: a Gaussian-weighted mean of the training y, inputs standardised, the
    # bandwidth chosen by leave-one-out error: local averaging with no global trend.
    scaler = StandardScaler().fit(data.x)
    x, test_x = scaler.transform(data.x), scaler.transform(data.test_x)
    train_d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(train_d2, np.inf)  # leave one out
    test_d2 = ((test_x[:, None] - x[None]) ** 2).sum(-1)

    def predict(d2, h):
      return special.softmax(-0.5 * d2 / h ** 2, axis=1) @ data.y

    h = min(SMOOTHER_BANDWIDTHS, key=lambda h: np.mean((predict(train_d2, h) - data.y) ** 2))
    return Fit(predict(test_d2, h))

  def median(study, data):
    return Fit(np.full(len(data.test_y), np.median(data.y)))

  return {'random forest': rf, 'GP (Matern 5/2)': gp, 'MLP': mlp,
          'kernel smoother': smoother, 'training median': median}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--checkpoint', default=None, help='default: the shipped checkpoint')
  parser.add_argument('--sets', default=DEFAULT_SETS, help='of bbob, gp, tuning, dims, sparse')
  parser.add_argument('--out', default=str(RESULTS / 'regression'))
  parser.add_argument('--views', type=int, default=DEFAULT_VIEWS,
                      help='views of a study each LM prediction averages (a 1-view row is added)')
  parser.add_argument('--records', default=None, metavar='JSON',
                      help='also write every (method, study, size) record here, unrounded')
  args = parser.parse_args(argv)
  torch.set_num_threads(1)
  sets = args.sets.split(',')
  studies = []
  if 'bbob' in sets:
    studies += bbob_studies(HELD_OUT_FUNCTIONS[:2] if args.quick else HELD_OUT_FUNCTIONS,
                            (2,) if args.quick else (2, 4, 8))
  if 'gp' in sets:
    studies += gp_studies(range(2 if args.quick else 5), (2,) if args.quick else (2, 4, 8))
  if 'tuning' in sets:
    studies += tuning_study_set(['svm_breast_cancer', 'elasticnet_diabetes'] if args.quick
                                else None)
  if 'dims' in sets:
    studies += [attrs.evolve(s, family='dims') for seed in DIMS_SET['seeds']
                for s in bbob_studies(('Sphere',), DIMS_SET['dims'], seed=seed)]
  if 'sparse' in sets:
    studies += bbob_studies(HELD_OUT_FUNCTIONS, SPARSE_SET['dims'],
                            effective=SPARSE_SET['effective'])

  pretrained = OmniPredRegressor.from_pretrained(args.checkpoint, views=args.views)
  methods = {'in-context LM, zero-shot': LMMethod(pretrained, None),
             'in-context LM, zero-shot, every parameter': LMMethod(
                 pretrained.for_new_study(relevance=None), None)}
  if args.views > 1:
    methods['in-context LM, zero-shot, 1 view'] = LMMethod(pretrained.for_new_study(views=1),
                                                           None)
  methods['in-context LM + LoRA'] = LMMethod(pretrained, LORA)
  methods.update(sklearn_methods(0))

  records = []
  warnings.filterwarnings('ignore', category=ConvergenceWarning)
  warnings.filterwarnings('ignore', module='sklearn')
  jobs = [(study, n) for study in studies for n in SIZES]
  for study, n in tqdm(jobs, desc='studies x sizes', dynamic_ncols=True):
    data = study.split(n)
    yte = data.test_y
    y_all = np.concatenate([data.y, yte])
    for name, method in methods.items():
      t0 = time.perf_counter()
      fit = method(study, data)
      covered = (float(np.mean((yte >= fit.lo) & (yte <= fit.hi))) if fit.lo is not None
                 else float('nan'))
      records.append(dict(method=name, family=study.family, study=study.name, dim=study.dim,
                          n=n, error=study_error(fit.median, yte, y_all),
                          spearman=float(stats.spearmanr(fit.median, yte).statistic),
                          coverage=covered, seconds=time.perf_counter() - t0))
  write_results(records, methods, args, pretrained)
  if args.records:
    pathlib.Path(args.records).write_text(json.dumps(records, indent=0))
  return 0


FAMILY_TITLES = {'bbob': 'held-out BBOB functions', 'gp': 'held-out GP-prior functions',
                 'tuning': 'scikit-learn tuning studies (mixed types)',
                 'dims': 'shifted Sphere (a pretraining family), 3 seeds per dimension',
                 'sparse': 'held-out BBOB functions of 2 parameters among 2, 4 or 8'}


def write_results(records, methods, args, pretrained) -> None:
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)

  def agg(name, family, n, key):
    vals = [r[key] for r in records if r['method'] == name and r['n'] == n
            and r['family'] == family]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float('nan')

  def cell(value, digits):  # '-': undefined (no predictive distribution; a constant's rank)
    return '-' if np.isnan(value) else f'{value:.{digits}f}'

  families = [f for f in FAMILY_TITLES if any(r['family'] == f for r in records)]
  first = next(iter(methods))
  cfg = pretrained.base.model_config
  lines = [f'Held-out studies ({BBOB_NUM_TEST} test points each for BBOB; '
           f'{NUM_TEST} for the others); mean over studies. Study error: '
           'lower is better; Spearman: higher is better; coverage: share of test y inside '
           'the 10-90% interval (0.8 is calibrated; `-`: no predictive distribution, or no rank '
           'order for Spearman). '
           f'LM: `{pretrained.card.get("name")}` ({pretrained.card.get("steps")} pretraining '
           f'steps; d_model {cfg.d_model}, {cfg.encoder_layers}+{cfg.decoder_layers} layers; '
           f'{pretrained.views} views; parameters read: '
           f'{"those its held-out likelihood keeps" if pretrained.relevance else "all"}); '
           f'LoRA: {LORA.max_steps} steps, rank {LORA.lora_rank}, lr {LORA.learning_rate}.', '']
  for family in families:
    count = sum(r['family'] == family and r['method'] == first and r['n'] == SIZES[0]
                for r in records)  # studies, also where seeds share a name ('dims')
    lines += [f'### {FAMILY_TITLES[family]} ({count} studies)', '',
              '| method | ' + ' | '.join(f'error @ {n}' for n in SIZES) + ' | '
              + ' | '.join(f'Spearman @ {n}' for n in SIZES) + ' | coverage @ 30 | s / fit @ 30 |',
              '|---|' + '---|' * (2 * len(SIZES) + 2)]
    for name in methods:
      errs = ' | '.join(cell(agg(name, family, n, 'error'), 3) for n in SIZES)
      rhos = ' | '.join(cell(agg(name, family, n, 'spearman'), 3) for n in SIZES)
      lines.append(f'| {name} | {errs} | {rhos} | {cell(agg(name, family, 30, "coverage"), 2)} '
                   f'| {agg(name, family, 30, "seconds"):.2f} |')
    lines.append('')
  flags = (' --quick' if args.quick else '') + (
      '' if args.sets == DEFAULT_SETS else f' --sets {args.sets}') + (
      '' if args.out == str(RESULTS / 'regression') else f' --out {args.out}') + (
      '' if args.views == DEFAULT_VIEWS else f' --views {args.views}')
  lines += [f'Command: `python benchmarks/regression.py{flags}`',
            '', '### Study error at 30 training points, by study (mean over seeds of one name)',
            '',
            '| study | ' + ' | '.join(methods) + ' |', '|---|' + '---|' * len(methods)]
  for family in families:
    for study in sorted({r['study'] for r in records if r['family'] == family}):
      cells = [np.mean([r['error'] for r in records if r['method'] == m and r['n'] == 30
                        and r['study'] == study]) for m in methods]
      best = int(np.argmin(cells))
      lines.append(f'| {study} | ' + ' | '.join(
          f'**{c:.3f}**' if i == best else f'{c:.3f}' for i, c in enumerate(cells)) + ' |')
  out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
  print('\n'.join(lines))

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, len(families), figsize=(4.5 * len(families), 7), squeeze=False)
  for col, family in enumerate(families):
    for name in methods:
      axes[0, col].plot(SIZES, [agg(name, family, n, 'error') for n in SIZES], marker='o',
                        label=name)
      axes[1, col].plot(SIZES, [agg(name, family, n, 'spearman') for n in SIZES], marker='o',
                        label=name)
    axes[0, col].set_title(FAMILY_TITLES[family], fontsize=10)
    axes[0, col].set_ylabel('study error (lower is better)')
    axes[1, col].set_ylabel('Spearman (higher is better)')
    for ax in axes[:, col]:
      ax.set_xscale('log')
      ax.set_xticks(SIZES, [str(s) for s in SIZES])
      ax.set_xlabel('training points (context)')
      ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out.with_suffix('.png'), dpi=110)
  print(f'wrote {out.with_suffix(".md")} and {out.with_suffix(".png")}')
  if 'dims' in families:
    plot_by_dimension(records, methods, out.with_name(out.name + '_by_dim.png'))


def plot_by_dimension(records, methods, path: pathlib.Path, n: int = 30) -> None:
  """Study error at n training points against the dimension (the `dims` set): where
  in-context regression stops keeping up with a GP."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  dims = sorted({r['dim'] for r in records if r['family'] == 'dims'})
  fig, ax = plt.subplots(figsize=(6, 4))
  for name in methods:
    ax.plot(dims, [np.mean([r['error'] for r in records if r['family'] == 'dims'
                            and r['method'] == name and r['n'] == n and r['dim'] == d])
                   for d in dims], marker='o', label=name)
  ax.set_xticks(dims)
  ax.set_xlabel('dimension')
  ax.set_ylabel(f'study error at {n} points (lower is better)')
  ax.set_title(FAMILY_TITLES['dims'], fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  print(f'wrote {path}')


if __name__ == '__main__':
  sys.exit(main())
