"""The regression benchmark's held-out studies and its baseline regressors.

Studies: BBOB functions (fixed shifts, uniform points), GP-prior draws, scikit-learn tuning
studies; each gives nested training sets and a fixed test set. Methods: the in-context LM
(`LMMethod`) and scikit-learn baselines (`sklearn_methods`), each -> a `Fit`.
"""

from __future__ import annotations

from typing import Callable

import attrs
import numpy as np
from scipy import special, stats
from sklearn.ensemble import RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm
from vizier import pyvizier as vz
from vizier._src.benchmarks.experimenters.synthetic import bbob

from benchmarks import transfer_families, tuning_studies, tuning_tasks
from vizier_omnipred import FineTuneConfig, OmniPredRegressor
from vizier_omnipred.pretraining.corpus import EVAL_SEED_OFFSET
from vizier_omnipred.pretraining.gp_prior import GPFunction
from vizier_omnipred.relevance import RelevanceConfig

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


# The `transfer` set: current-study sizes, and the seed of the left-out study's own random
# trials (the prior studies' trials come from `transfer_families`, another seed).
TRANSFER_SIZES = (5, 10, 30)
TRANSFER_METHODS = ('LM', 'LM + related prior studies',
                    'LM + related prior studies, mixture (the designer\'s reading)',
                    'LM + related prior studies, averaged with the study alone',
                    'GP bandit', 'GP bandit + set_priors (stacked residual GPs)')
# Readings of the prior studies (`RelevanceConfig.prior_studies`) an LM method names; one that
# names none reads them the regressor's own way.
_READINGS = ('mixture', 'averaged')
_TRANSFER_SEED = 2024


def transfer_errors(base: OmniPredRegressor, progress=None) -> dict:
  """Study error at TRANSFER_SIZES current trials on every left-out study of the related
  families (`transfer_families`): the LM with its family's other studies in context (read as
  prior studies, or the designer's mixture of that and pooling) and without, Vizier's GP
  bandit with `set_priors` and without. -> {(method, n): [errors]}."""
  import jax  # pylint: disable=g-import-not-at-top
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  from vizier._src.algorithms.designers import gp_bandit  # pylint: disable=g-import-not-at-top
  out = {(m, n): [] for m in TRANSFER_METHODS for n in TRANSFER_SIZES}
  for case, name, fam in transfer_families.cases():
    if case != 'related':
      continue
    study = {s.name: s for s in transfer_families.family(fam)}[name]
    exptr = tuning_tasks.TaskExperimenter(study)
    configs = tuning_studies.sample_configurations(
        study.problem, max(TRANSFER_SIZES) + NUM_TEST, np.random.default_rng(_TRANSFER_SEED))
    y = np.asarray([exptr.score(c) for c in configs])
    test, test_y = configs[-NUM_TEST:], y[-NUM_TEST:]
    priors = transfer_families.priors(case, name, fam)
    prior_examples = [[(t.parameters.as_dict(), t.final_measurement.metrics[exptr.metric].value)
                       for t in trials] for _, _, trials in priors]
    for n in TRANSFER_SIZES:
      train = list(zip(configs[:n], y[:n]))
      trials = [vz.Trial(id=i + 1, parameters=c).complete(vz.Measurement({exptr.metric: v}))
                for i, (c, v) in enumerate(train)]
      for method in TRANSFER_METHODS:
        if method.startswith('LM'):
          relevance = base.relevance or RelevanceConfig()
          reading = next((r for r in _READINGS if r in method), None)
          reg = base.for_new_study(relevance=attrs.evolve(relevance, prior_studies=reading)
                                   if reading else 'same')
          reg.condition(train, problem=study.problem,
                        prior_studies=prior_examples if 'prior' in method else ())
          pred = reg.predict(test, num_samples=64).median
        else:
          gp = gp_bandit.VizierGPBandit(study.problem, rng=jax.random.PRNGKey(0))
          if 'set_priors' in method:
            gp.set_priors([vza.CompletedTrials(t) for _, _, t in priors])
          gp.update(vza.CompletedTrials(trials), vza.ActiveTrials())
          pred = np.asarray(gp.predict([vz.TrialSuggestion(c) for c in test]).mean)
          if study.problem.metric_information.item().goal.is_minimize:
            pred = -pred  # google-vizier 0.1.24 predicts a minimised metric negated
        out[method, n].append(study_error(pred, test_y, y))
        if progress is not None:
          progress.update(1)
  return out
