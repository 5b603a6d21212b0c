"""Synthetic studies for in-context pretraining, streamed from a seed (nothing on disk).

A study = an objective over z in [-5, 5]^d: a BBOB function (vizier.benchmarks) with a random
shift of its optimum and a seeded rotation, a function drawn from a GP prior (`gp_prior`), or
the sum or product of the two; d in [min_dim, max_dim]. Each coordinate is driven by one
Vizier parameter of a random type (DOUBLE linear or log, INTEGER, DISCRETE, CATEGORICAL with
categories that move the coordinate), with a realistic name; an output map (optional log warp,
random scale over many orders of magnitude, sign, offset) and study metadata (title, metric,
goal). Trials are drawn uniformly or clustered near the optimum, as an optimizer would.

Held-out functions and a disjoint seed range form the evaluation split.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import attrs
import numpy as np
from vizier import pyvizier as vz
from vizier._src.benchmarks.experimenters.synthetic import bbob

from vizier_omnipred.pretraining import bbob_rotations
from vizier_omnipred.pretraining.gp_prior import GPFunction, GPPriorConfig

bbob_rotations.install()

# The 21 BBOB functions that vizier.benchmarks implements (F1-F24 less F8, F10's rotated
# twin and F19's original; names as in vizier).
BBOB_FUNCTIONS = (
    'Sphere', 'Ellipsoidal', 'Rastrigin', 'BuecheRastrigin', 'LinearSlope', 'AttractiveSector',
    'StepEllipsoidal', 'RosenbrockRotated', 'Discus', 'BentCigar', 'SharpRidge',
    'DifferentPowers', 'Weierstrass', 'SchaffersF7', 'SchaffersF7IllConditioned',
    'GriewankRosenbrock', 'Schwefel', 'Gallagher101Me', 'Gallagher21Me', 'Katsuura', 'Lunacek',
)
HELD_OUT_FUNCTIONS = ('AttractiveSector', 'BuecheRastrigin', 'SharpRidge', 'Weierstrass',
                      'Gallagher21Me')
TRAIN_FUNCTIONS = tuple(f for f in BBOB_FUNCTIONS if f not in HELD_OUT_FUNCTIONS)
_NEEDS_DIM_2 = {'GriewankRosenbrock', 'RosenbrockRotated', 'SchaffersF7',
                'SchaffersF7IllConditioned'}
EVAL_SEED_OFFSET = 1_000_000_007  # evaluation studies use seeds at and above this

_LOG_NAMES = ('learning_rate', 'weight_decay', 'l2_regularization', 'epsilon', 'init_scale',
              'min_learning_rate', 'alpha', 'lambda', 'gamma', 'C', 'reg_alpha', 'lr')
_LINEAR_NAMES = ('dropout', 'momentum', 'beta1', 'beta2', 'temperature', 'warmup_fraction',
                 'label_smoothing', 'clip_norm', 'subsample', 'colsample_bytree', 'mixup_alpha',
                 'threshold', 'position', 'angle', 'voltage', 'pressure', 'ratio')
_INT_NAMES = ('num_layers', 'hidden_units', 'num_trees', 'max_depth', 'num_epochs',
              'num_heads', 'patience', 'min_samples_leaf', 'kernel_size', 'num_workers',
              'n_estimators', 'steps')
_DISCRETE_NAMES = ('batch_size', 'num_filters', 'embedding_dim', 'sequence_length',
                   'image_size', 'buffer_size')
_CATEGORIES = {
    'optimizer': ('adam', 'sgd', 'rmsprop', 'adagrad', 'lamb', 'adafactor'),
    'activation': ('relu', 'gelu', 'tanh', 'swish', 'elu'),
    'kernel': ('rbf', 'linear', 'poly', 'sigmoid'),
    'loss': ('mse', 'huber', 'l1', 'log_cosh'),
    'scheduler': ('cosine', 'linear', 'constant', 'step', 'exponential'),
    'booster': ('gbtree', 'dart', 'gblinear'),
    'normalization': ('batch', 'layer', 'none', 'group'),
    'use_bias': ('True', 'False'),
    'pooling': ('max', 'avg', 'attention'),
}
_TITLES = ('{m} on {d}', 'tune {m} for {d}', '{d} {m} sweep', '{m}', 'hparam search {d}',
           'synthetic objective', '')
_MODELS = ('resnet50', 'xgboost', 'transformer', 'mlp', 'svm', 'lightgbm', 'cnn', 'lstm',
           'vit', 'random forest', 'bert', 'controller', 'solver', 'simulator')
DATASETS = ('imagenet', 'cifar10', 'mnist', 'higgs', 'criteo', 'wmt', 'librispeech',
             'boston', 'covertype', 'sst2', 'chip design', 'wind tunnel', 'ads')
METRICS = {'MINIMIZE': ('loss', 'error', 'val_loss', 'latency_ms', 'rmse', 'cost', 'regret',
                         'objective', 'bbob_eval'),
            'MAXIMIZE': ('accuracy', 'auc', 'reward', 'f1', 'throughput', 'score', 'objective',
                         'precision')}


@attrs.frozen
class CorpusConfig:
  """What synthetic studies look like."""

  min_dim: int = attrs.field(default=1, kw_only=True)
  max_dim: int = attrs.field(default=12, kw_only=True)
  bbob_style_fraction: float = attrs.field(default=0.3, kw_only=True)  # x0..xn in [lo, hi]
  clustered_fraction: float = attrs.field(default=0.5, kw_only=True)  # trials near optimum
  # Share of studies that zoom in: their clustered trials sit around the optimum itself, at
  # spreads log-uniform over ZOOM_LOG10_SPREAD, as a converging optimiser's do; the model
  # learns to rank moves near an incumbent.
  zoom_fraction: float = attrs.field(default=0.0, kw_only=True)
  log_warp_fraction: float = attrs.field(default=0.25, kw_only=True)
  # y replaced by its rank among the sampled trials (what a rank-warping designer feeds).
  rank_warp_fraction: float = attrs.field(default=0.15, kw_only=True)
  noise_fraction: float = attrs.field(default=0.2, kw_only=True)
  # Share of studies over a conditional space (`conditional_prior.ConditionalStudy`).
  conditional_fraction: float = attrs.field(default=0.0, kw_only=True)
  # Share of studies whose trials carry other metrics' values as inputs
  # (`multi_output_prior.MultiOutputStudy`: several objectives, read by the chain rule).
  multi_output_fraction: float = attrs.field(default=0.0, kw_only=True)
  # Training studies come from a fixed pool and recur with fresh trials, so the model must
  # learn each study's x -> y (OmniPred's multi-task setting); None: every study is new.
  pool_size: int | None = attrs.field(default=2048, kw_only=True)
  reference_trials: int = attrs.field(default=128, kw_only=True)  # fixes each study's y scale
  # What the objective is, with probabilities: BBOB, GP draw, BBOB + GP, BBOB * exp(GP).
  # A new study of `SyntheticStudy` defaults to BBOB alone (deterministic, `evaluate`-able).
  objective_weights: tuple[tuple[str, float], ...] = attrs.field(
      default=(('bbob', 1.0),), kw_only=True)
  gp: GPPriorConfig = attrs.field(factory=GPPriorConfig, kw_only=True)


OBJECTIVES = ('bbob', 'gp', 'sum', 'product')
# A zooming study's clustered trials: log10 of their spread around the study's centre (the
# optimum of its BBOB part) in [-5, 5] coordinates. From 1 (a tenth of the range) down to
# 10^-3, a decade and more below the designer's smallest trust-region radius (0.005 of a unit
# range, 0.05 here): the scales a converging study's trials span.
ZOOM_LOG10_SPREAD = (-3.0, 0.0)
# The in-context prior: mostly GP draws (what a Bayesian-optimal regressor is built for), BBOB
# landscapes for optima, ridges and ill-conditioning, and mixtures of both; 15% of studies
# over conditional spaces (a choice with its own child parameters, up to two levels), 15% whose
# trials also carry other metrics (several objectives, read by the chain rule).
IN_CONTEXT_CORPUS = CorpusConfig(
    pool_size=None, clustered_fraction=0.4, conditional_fraction=0.15, multi_output_fraction=0.15,
    objective_weights=(('gp', 0.45), ('bbob', 0.3), ('sum', 0.15), ('product', 0.1)))


@attrs.frozen
class _Coordinate:
  """How one parameter drives one coordinate z in [-5, 5] of the BBOB function."""

  config: vz.ParameterConfig
  to_z: Callable[[object], float]
  from_z: Callable[[float], object]
  sample: Callable[[np.random.Generator], object]


def draw_coordinate(rng: np.random.Generator, i: int, taken: set[str],
                    bbob_style: bool = False) -> _Coordinate:
  """A random parameter (type, name not in `taken`, range) driving coordinate i."""
  if bbob_style:
    lo = float(rng.choice([-5.0, -1.0, 0.0, -10.0, -2.0]))
    hi = float(rng.choice([1.0, 5.0, 10.0, 2.0]))
    return _linear(f'x{i}', lo, hi)
  kind = rng.choice(['linear', 'log', 'int', 'discrete', 'categorical'],
                    p=[0.3, 0.2, 0.2, 0.1, 0.2])
  if kind == 'linear':
    m = 10.0 ** rng.uniform(-2, 3)
    lo = m * rng.uniform(-1, 0.5)
    return _linear(_pick_name(rng, taken, _LINEAR_NAMES, i), lo, lo + m * rng.uniform(0.5, 2))
  if kind == 'log':
    lo = 10.0 ** rng.uniform(-7, 0)
    hi = lo * 10.0 ** rng.uniform(1, 5)
    pc = vz.ParameterConfig.factory(_pick_name(rng, taken, _LOG_NAMES, i), bounds=(lo, hi),
                                    scale_type=vz.ScaleType.LOG)
    span = math.log(hi / lo)
    return _Coordinate(
        pc, to_z=lambda v: -5 + 10 * math.log(float(v) / lo) / span,
        from_z=lambda z: lo * math.exp((np.clip(z, -5, 5) + 5) / 10 * span),
        sample=lambda r: lo * math.exp(r.uniform(0, span)))
  if kind == 'int':
    lo = int(rng.integers(-5, 65))
    hi = lo + int(rng.integers(3, 500))
    pc = vz.ParameterConfig.factory(_pick_name(rng, taken, _INT_NAMES, i), bounds=(lo, hi))
    return _Coordinate(
        pc, to_z=lambda v: -5 + 10 * (float(v) - lo) / (hi - lo),
        from_z=lambda z: int(round(lo + (np.clip(z, -5, 5) + 5) / 10 * (hi - lo))),
        sample=lambda r: int(r.integers(lo, hi + 1)))
  if kind == 'discrete':
    k = int(rng.integers(3, 9))
    if rng.random() < 0.5:
      start = int(rng.integers(0, 5))
      values = [float(2 ** (start + j)) for j in range(k)]
    else:
      values = sorted(set(np.round(np.sort(rng.uniform(0, 10.0 ** rng.uniform(0, 3), k)), 3)))
    values = sorted(set(float(v) for v in values))
    if len(values) < 2:
      values = [0.0, 1.0]
    vlo, vhi = values[0], values[-1]
    arr = np.asarray(values)
    pc = vz.ParameterConfig.factory(_pick_name(rng, taken, _DISCRETE_NAMES, i), feasible_values=values)
    return _Coordinate(
        pc, to_z=lambda v: -5 + 10 * (float(v) - vlo) / (vhi - vlo),
        from_z=lambda z: float(arr[np.argmin(np.abs(arr - (vlo + (np.clip(z, -5, 5) + 5) / 10 * (vhi - vlo))))]),
        sample=lambda r: float(r.choice(arr)))
  name = str(rng.choice(list(_CATEGORIES)))
  cats = list(_CATEGORIES[name])
  cats = cats[: max(2, int(rng.integers(2, len(cats) + 1)))]
  z_of = {c: float(rng.uniform(-5, 5)) for c in cats}
  pc = vz.ParameterConfig.factory(_pick_name(rng, taken, (name,), i), feasible_values=cats)
  return _Coordinate(
      pc, to_z=lambda v: z_of[str(v)],
      from_z=lambda z: min(cats, key=lambda c: abs(z_of[c] - z)),
      sample=lambda r: str(r.choice(cats)))


def _linear(name: str, lo: float, hi: float) -> _Coordinate:
  pc = vz.ParameterConfig.factory(name, bounds=(float(lo), float(hi)))
  return _Coordinate(
      pc, to_z=lambda v: -5 + 10 * (float(v) - lo) / (hi - lo),
      from_z=lambda z: float(lo + (np.clip(z, -5, 5) + 5) / 10 * (hi - lo)),
      sample=lambda r: float(r.uniform(lo, hi)))


def _pick_name(rng: np.random.Generator, taken: set[str], pool: tuple[str, ...], i: int) -> str:
  name = str(rng.choice(pool))
  return name if name not in taken else f'{name}_{i}'


class SyntheticStudy:
  """One synthetic study: a problem statement and its objective."""

  metric_inputs: tuple[str, ...] = ()  # no other metric is read (see multi_output_prior)

  def __init__(self, seed: int, config: CorpusConfig = CorpusConfig(), *, split: str = 'train'):
    if split not in ('train', 'eval'):
      raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    self.seed = seed
    rng = np.random.default_rng([seed, 0 if split == 'train' else 1])
    self._rng = rng
    functions = TRAIN_FUNCTIONS if split == 'train' else HELD_OUT_FUNCTIONS
    self.function_name = str(rng.choice(functions))
    lo_dim = max(config.min_dim, 2 if self.function_name in _NEEDS_DIM_2 else 1)
    # Small dimensions are more common in real studies.
    self.dim = int(min(config.max_dim, lo_dim + rng.geometric(0.25) - 1))
    self.dim = max(self.dim, lo_dim)
    self._fn = getattr(bbob, self.function_name)
    kinds, weights = zip(*config.objective_weights)
    unknown = set(kinds) - set(OBJECTIVES)
    if unknown:
      raise ValueError(f'CorpusConfig.objective_weights: unknown objectives {sorted(unknown)};'
                       f' known: {OBJECTIVES}.')
    # Only a mixed prior draws here, so BBOB-only corpora keep their seeds' studies.
    self.objective = kinds[0] if len(kinds) == 1 else str(
        rng.choice(kinds, p=np.asarray(weights) / sum(weights)))
    self._rotation_seed = int(rng.integers(0, 2**31 - 1))
    self.shift = rng.uniform(-4, 4, self.dim)
    bbob_style = rng.random() < config.bbob_style_fraction
    self._coords: list[_Coordinate] = []
    for i in range(self.dim):
      self._coords.append(self._coordinate(i, bbob_style))
    warp = rng.random()
    self._log_warp = warp < config.log_warp_fraction
    self._rank_warp = (not self._log_warp
                       and warp < config.log_warp_fraction + config.rank_warp_fraction)
    self._noise = rng.random() < config.noise_fraction
    scale = 10.0 ** rng.uniform(-3, 3)
    maximize = rng.random() < 0.4
    self._scale = -scale if maximize else scale
    self._offset = float(rng.uniform(-1, 1) * 10.0 ** rng.uniform(-3, 3))
    self._clustered_fraction = config.clustered_fraction
    # Drawn only for a zooming prior, so that the other corpora keep their seeds' studies.
    self.zooms = config.zoom_fraction > 0 and rng.random() < config.zoom_fraction
    goal = 'MAXIMIZE' if maximize else 'MINIMIZE'
    problem = vz.ProblemStatement()
    for c in self._coords:
      problem.search_space.add(c.config)
    metric = str(rng.choice(METRICS[goal]))
    problem.metric_information.append(
        vz.MetricInformation(name=metric, goal=vz.ObjectiveMetricGoal[goal]))
    title = str(rng.choice(_TITLES)).format(m=rng.choice(_MODELS), d=rng.choice(DATASETS))
    if title:
      problem.metadata['title'] = title
    problem.metadata['description'] = f'synthetic study {seed}'
    self.problem = problem
    self._gp = (GPFunction.draw(self.dim, rng, config.gp) if self.objective != 'bbob' else None)
    self._reference_trials = config.reference_trials
    self._reference_cache: np.ndarray | None = None

  @property
  def _reference(self) -> np.ndarray:
    """Sorted raw BBOB values on a fixed uniform sample: the rank warp's ECDF and the y range,
    so that targets of one study are the same on every visit. Built on first use (it costs
    `reference_trials` BBOB evaluations, which a fresh in-context study never needs)."""
    if self._reference_cache is None:
      ref_rng = np.random.default_rng([self.seed, 2])
      rows = self.sample_parameters(self._reference_trials, ref_rng, uniform=True)
      self._reference_cache = np.sort(self._raw(rows))
    return self._reference_cache

  @property
  def y_range(self) -> tuple[float, float]:
    ref = self._output(self._reference)
    return float(ref.min()), float(ref.max())

  def _coordinate(self, i: int, bbob_style: bool) -> _Coordinate:
    return draw_coordinate(self._rng, i, {c.config.name for c in self._coords}, bbob_style)

  @property
  def parameter_names(self) -> list[str]:
    return [c.config.name for c in self._coords]

  def sample_parameters(self, n: int, rng: np.random.Generator, *,
                        uniform: bool = False) -> list[dict]:
    """Uniform draws, or draws clustered near the optimum (as an optimizer's trials are)."""
    rows = []
    for _ in range(n):
      if not uniform and rng.random() < self._clustered_fraction:
        if self.zooms:
          z = self.shift + rng.normal(0, 10 ** rng.uniform(*ZOOM_LOG10_SPREAD), self.dim)
        else:
          centre = self.shift + rng.normal(0, 1.0, self.dim)
          z = centre + rng.normal(0, 10 ** rng.uniform(-1.5, 0.3), self.dim)
        rows.append({c.config.name: c.from_z(zi) for c, zi in zip(self._coords, z)})
      else:
        rows.append({c.config.name: c.sample(rng) for c in self._coords})
    return rows

  def coordinates(self, rows: list[dict]) -> np.ndarray:
    """Parameter dicts -> [n, d] coordinates in [-5, 5]."""
    return np.asarray([[c.to_z(row[c.config.name]) for c in self._coords] for row in rows],
                      dtype=np.float64).reshape(len(rows), self.dim)

  def _bbob(self, z: np.ndarray) -> np.ndarray:
    return np.asarray([float(np.real(self._fn(zi - self.shift, seed=self._rotation_seed)))
                       for zi in z])

  def _raw(self, rows: list[dict]) -> np.ndarray:
    if self.objective != 'bbob':
      raise ValueError(
          f'Study {self.seed} is a {self.objective!r} objective (a GP part is drawn jointly at'
          ' a set of points): use draw(n, rng), not evaluate().')
    return self._bbob(self.coordinates(rows))

  def draw(self, n: int, rng: np.random.Generator) -> tuple[list[dict], np.ndarray]:
    """n trials and their objective values, drawn together: a GP part is one joint draw, so
    every call is a new function of the same kind (what in-context pretraining needs)."""
    rows = self.sample_parameters(n, rng)
    return rows, self.metric(self.latent(self.coordinates(rows), rng))

  def latent(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The raw objective at coordinates z [n, d]: a GP part is one joint draw at all of them
    (so one call is one function; `family_prior` evaluates several related studies' points
    in one call), with the study's noise on a BBOB objective."""
    n = len(z)
    if self.objective == 'gp':
      return self._gp.sample((z + 5.0) / 10.0, rng)
    raw = self._bbob(z)
    if self.objective != 'bbob':
      g = self._gp.sample((z + 5.0) / 10.0, rng)
      spread = float(np.std(raw)) or 1.0
      raw = raw / spread + g if self.objective == 'sum' else raw * np.exp(0.5 * g)
    elif self._noise:
      raw = raw + rng.normal(0, 0.01 * (float(np.std(raw)) + 1e-12), n)
    return raw

  def metric(self, raw: np.ndarray) -> np.ndarray:
    """Raw values of one draw -> the study's metric: its warp (log, or ranks within the
    draw), scale, sign and offset."""
    if self._log_warp:
      raw = np.log1p(raw - raw.min())
    elif self._rank_warp:  # what a rank-warping designer feeds: ranks in [0, 1]
      raw = np.argsort(np.argsort(raw, kind='stable'), kind='stable') / max(1, len(raw) - 1)
    return self._scale * raw + self._offset

  @property
  def coordinate_specs(self) -> list[_Coordinate]:
    """How each parameter drives its coordinate (`family_prior` samples related studies'
    trials in other ranges through them)."""
    return list(self._coords)

  def _output(self, raw: np.ndarray) -> np.ndarray:
    """Raw BBOB values -> the study's metric (warp, scale, sign, offset)."""
    out = raw
    if self._log_warp:
      out = np.log1p(np.maximum(out, 0.0))
    elif self._rank_warp:  # the reference sample's ECDF: a fixed monotone map
      out = np.searchsorted(self._reference, out) / len(self._reference)
    return self._scale * out + self._offset

  def evaluate(self, rows: list[dict], rng: np.random.Generator | None = None) -> np.ndarray:
    """Objective values (float64) of parameter dicts; `rng` adds the study's noise, if any."""
    raw = self._raw(rows)
    if self._noise and rng is not None:
      raw = raw + rng.normal(0, 0.01 * (np.std(self._reference) + 1e-12), len(raw))
    return self._output(raw)


def iterate_studies(seed: int, config: CorpusConfig = CorpusConfig(), *,
                    split: str = 'train') -> Iterator[SyntheticStudy]:
  """An endless, deterministic stream of studies."""
  base = seed + (EVAL_SEED_OFFSET if split == 'eval' else 0)
  i = 0
  while True:
    yield SyntheticStudy(base + i, config, split=split)
    i += 1
