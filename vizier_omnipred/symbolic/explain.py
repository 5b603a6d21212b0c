"""Explain a study: a closed-form formula for y, constants refined by BFGS.

    from vizier_omnipred.symbolic.explain import explain
    result = explain(x, y, names=['lr', 'momentum'])       # or explain_trials(problem, trials)
    print(result)                                          # formula, R2 on held-out points

Steps (Kamienny et al. 2022): split off held-out points; whiten the inputs as the generator
does; the model reads (a subsample of) the training points and samples candidate formulas
(plus its greedy one); each distinct skeleton is rewritten in the raw inputs and its
constants are refined by BFGS (scipy) on the training points' squared error, with gradients
from torch; the shortest candidate within `r2_tolerance` of the best training R2 wins; its
constants that can be zeroed at almost no cost are (`prune_constants`); its held-out R2
decides whether it `fits` (`ExplainConfig.min_r2`). A failed fit is reported as such.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import attrs
import numpy as np
import scipy.optimize
import torch

from vizier_omnipred.symbolic.expressions import CONSTANT, Formula, simplified
from vizier_omnipred.symbolic.model import SymbolicModel, load_pretrained


@attrs.frozen
class ExplainConfig:
  """Knobs of one explanation."""

  num_samples: int = attrs.field(default=32, kw_only=True)  # sampled candidates (+1 greedy)
  # 0.7: on 18 validation problems (not the benchmark's) share with test R2 > 0.99 was
  # 0.67 at 0.7, 0.56 at 1.0, 0.50 at 0.5 (step-13000 model).
  temperature: float = attrs.field(default=0.7, kw_only=True)
  max_points: int = attrs.field(default=100, kw_only=True)  # the model reads at most these
  test_fraction: float = attrs.field(default=0.25, kw_only=True)
  refine: bool = attrs.field(default=True, kw_only=True)  # False: the paper's ablation
  bfgs_max_iter: int = attrs.field(default=100, kw_only=True)
  min_r2: float = attrs.field(default=0.9, kw_only=True)
  r2_tolerance: float = attrs.field(default=1e-3, kw_only=True)  # prefer shorter within this
  prune_tolerance: float = attrs.field(default=1e-5, kw_only=True)  # R2 a dropped constant may cost
  seed: int = attrs.field(default=0, kw_only=True)

  def __attrs_post_init__(self):
    if self.num_samples < 0:
      raise ValueError(f'ExplainConfig: num_samples must be >= 0, got {self.num_samples}.')
    if not 0.0 <= self.test_fraction < 1.0:
      raise ValueError(f'ExplainConfig: test_fraction must be in [0, 1), got {self.test_fraction}.')


@attrs.frozen
class Explanation:
  """The best formula found, how well it fits, and whether that is good enough."""

  formula: str  # SymPy-simplified, in the caller's input names
  fits: bool
  r2_train: float
  r2_test: float | None  # None when there were too few points to hold any out
  constants: tuple[float, ...]  # refined values, in the raw (unwhitened) inputs
  skeleton: tuple[str, ...]  # prefix tokens, C for each constant
  names: tuple[str, ...]
  target: str  # what y is called
  candidates: int  # distinct formulas scored
  wall_time_s: float
  message: str

  def predict(self, x: np.ndarray) -> np.ndarray:
    """The formula's values at x [N, D] (raw inputs)."""
    return Formula(self.skeleton, self.constants).evaluate(np.asarray(x, dtype=np.float64))

  def __str__(self) -> str:
    test = 'n/a' if self.r2_test is None else f'{self.r2_test:.4f}'
    head = f'{self.target} = {self.formula}' if self.fits else f'No formula fits. {self.message}'
    return f'{head}\n  R2 train {self.r2_train:.4f}, held-out {test}; {self.candidates} candidates, {self.wall_time_s:.1f} s'


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
  """Coefficient of determination; -inf when the prediction is not finite everywhere."""
  if not np.all(np.isfinite(pred)):
    return -math.inf
  with np.errstate(over='ignore'):
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - np.mean(y)) ** 2))
  return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else -math.inf)


def in_raw_inputs(formula: Formula, mean: np.ndarray, std: np.ndarray, y_scale: float) -> Formula:
  """f(z) with z = (x - mean) / std and y = y_scale * f  ->  the same function of raw x."""
  tokens, consts = [], []
  values = iter(formula.constants)
  if y_scale != 1.0:
    tokens += ['mul', CONSTANT]
    consts.append(y_scale)
  for tok in formula.tokens:
    if tok == CONSTANT:
      tokens.append(tok)
      consts.append(next(values))
    elif tok.startswith('x'):
      i = int(tok[1:])
      tokens += ['mul', CONSTANT, 'sub', tok, CONSTANT]
      consts += [1.0 / std[i], mean[i]]
    else:
      tokens.append(tok)
  return Formula(tokens, consts)


def refine_constants(formula: Formula, x: np.ndarray, y: np.ndarray, max_iter: int,
                     frozen: Sequence[int] = ()) -> Formula:
  """BFGS on the mean squared error / var(y), from the formula's own constants.

  Constants whose index is in `frozen` keep their value. Never returns a worse fit.
  """
  free = np.array([i for i in range(formula.num_constants) if i not in set(frozen)], dtype=int)
  if len(free) == 0:
    return formula
  xt = torch.as_tensor(x, dtype=torch.float64)
  yt = torch.as_tensor(y, dtype=torch.float64)
  scale = float(np.var(y)) or 1.0
  full = np.asarray(formula.constants, dtype=np.float64)

  def loss_and_grad(c: np.ndarray):
    values = full.copy()
    values[free] = c
    ct = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    loss = torch.mean((formula.evaluate_torch(xt, ct) - yt) ** 2) / scale
    if not torch.isfinite(loss):
      return 1e12, np.zeros_like(c)
    loss.backward()
    grad = ct.grad.numpy()[free]
    if not np.all(np.isfinite(grad)):
      return 1e12, np.zeros_like(c)
    return float(loss.detach()), grad

  start = full[free]
  with np.errstate(all='ignore'):
    res = scipy.optimize.minimize(loss_and_grad, start, jac=True, method='BFGS',
                                  options={'maxiter': max_iter, 'gtol': 1e-10})
  if np.all(np.isfinite(res.x)) and res.fun <= loss_and_grad(start)[0]:
    full[free] = res.x
  return formula.with_constants(full)


def prune_constants(formula: Formula, x: np.ndarray, y: np.ndarray, max_iter: int,
                    tolerance: float) -> Formula:
  """Sets each constant to 0 (others re-refined) when R2 drops by less than `tolerance`.

  Whitening leaves shifts like (x - 1e-9) in a refined formula; dropping them is what lets
  SymPy fold the rest into a readable law.
  """
  best_r2 = r2_score(y, formula.evaluate(x))
  zeroed: list[int] = []
  for i in range(formula.num_constants):
    if formula.constants[i] == 0.0:
      continue
    values = list(formula.constants)
    values[i] = 0.0
    trial = refine_constants(formula.with_constants(values), x, y, max_iter, zeroed + [i])
    r2 = r2_score(y, trial.evaluate(x))
    if r2 >= best_r2 - tolerance:
      formula, best_r2 = trial, max(best_r2, r2)
      zeroed.append(i)
  return formula


# Largest |value| explain() accepts: its square (variance, R2) must stay finite in float64.
MAX_ABS_VALUE = 1e150


def _check_data(x, y, names, max_dim: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64).reshape(-1)
  if x.ndim == 1:
    x = x[:, None]
  if x.ndim != 2:
    raise ValueError(f'x must be [N, D], got shape {x.shape}.')
  n, d = x.shape
  names = tuple(names) if names is not None else tuple(f'x{i}' for i in range(d))
  if len(names) != d:
    raise ValueError(f'{len(names)} names for {d} input columns.')
  if len(y) != n:
    raise ValueError(f'x has {n} rows but y has {len(y)} values.')
  if d > max_dim:
    raise ValueError(f'The model reads at most {max_dim} inputs; got {d} ({", ".join(names)}).'
                     ' Pick the inputs to explain.')
  if n < 5:
    raise ValueError(f'Need at least 5 points to explain y, got {n}.')
  for j, name in enumerate(names):
    bad = np.flatnonzero(~np.isfinite(x[:, j]))
    if len(bad):
      raise ValueError(f'Input {name!r} is not finite in row {bad[0]} ({x[bad[0], j]!r}).')
  bad = np.flatnonzero(~np.isfinite(y))
  if len(bad):
    raise ValueError(f'y is not finite in row {bad[0]} ({y[bad[0]]!r}).')
  for label, column in [(f'Input {name!r}', x[:, j]) for j, name in enumerate(names)] + [
      ('y', y)]:
    peak = float(np.max(np.abs(column)))
    if peak > MAX_ABS_VALUE:
      raise ValueError(
          f'{label} reaches {peak:.3g}: beyond {MAX_ABS_VALUE:.0e} its square overflows float64'
          f' (whitening and R2 need squares). Rescale it first, e.g. divide by'
          f' 1e{int(math.floor(math.log10(peak)))}.')
  if np.ptp(y) == 0:
    raise ValueError(f'y is constant ({y[0]!r}): there is nothing to explain.')
  return x, y, names


def explain(x, y, names: Sequence[str] | None = None, *, target: str = 'y',
            model: SymbolicModel | None = None,
            config: ExplainConfig = ExplainConfig()) -> Explanation:
  """A formula for y(x). No model: the shipped symbolic-regression checkpoint."""
  start = time.perf_counter()
  if model is None:
    model, _ = load_pretrained()
  x, y, names = _check_data(x, y, names, model.model_config.max_dim)
  rng = np.random.default_rng(config.seed)
  n = len(y)
  order = rng.permutation(n)
  n_test = int(round(config.test_fraction * n)) if n >= 8 else 0
  test, train = order[:n_test], order[n_test:]
  xt, yt = x[train], y[train]
  mean, std = xt.mean(0), xt.std(0)
  std = np.where(std > 0, std, 1.0)
  # y enters the model as number tokens; keep it inside the range it was trained on.
  peak = float(np.max(np.abs(yt)))
  y_scale = 10.0 ** math.floor(math.log10(peak)) if (peak > 1e4 or peak < 1e-2) else 1.0
  read = train if len(train) <= config.max_points else rng.choice(train, config.max_points,
                                                                  replace=False)
  z = (x[read] - mean) / std
  gen = torch.Generator().manual_seed(config.seed)
  candidates = model.sample(z, y[read] / y_scale, 1, temperature=0.0)
  if config.num_samples:
    candidates += model.sample(z, y[read] / y_scale, config.num_samples,
                               temperature=config.temperature, generator=gen)
  # One start per distinct skeleton: the sampled constants that fit best before refinement.
  # The skeleton is rewritten in the raw inputs first, which gives every input occurrence its
  # own free scale and shift for BFGS (x -> C * (x - C)).
  starts: dict[tuple[str, ...], tuple[float, Formula]] = {}
  for cand in candidates:
    f = in_raw_inputs(cand, mean, std, y_scale)
    r2 = r2_score(yt, f.evaluate(xt))
    if f.tokens not in starts or r2 > starts[f.tokens][0]:
      starts[f.tokens] = (r2, f)
  scored = []
  for r2, f in starts.values():
    if config.refine:
      f = refine_constants(f, xt, yt, config.bfgs_max_iter)
      r2 = r2_score(yt, f.evaluate(xt))
    scored.append((r2, -len(f.tokens), f))
  # Occam: the shortest formula within `r2_tolerance` of the best training fit.
  top = max(s[0] for s in scored)
  pool = [s for s in scored if s[0] >= top - config.r2_tolerance] if math.isfinite(top) else scored
  r2_train, _, best = max(pool, key=lambda s: (s[1], s[0]))
  if config.refine and math.isfinite(r2_train):
    best = prune_constants(best, xt, yt, config.bfgs_max_iter, config.prune_tolerance)
    best = refine_constants(best, xt, yt, 5 * config.bfgs_max_iter)  # polish the winner
    r2_train = r2_score(yt, best.evaluate(xt))
  r2_test = r2_score(y[test], best.evaluate(x[test])) if n_test else None
  judged = r2_test if r2_test is not None else r2_train
  fits = bool(np.isfinite(judged) and judged >= config.min_r2)
  formula = simplified(best.to_sympy(names), max_ops=40 if np.isfinite(r2_train) else -1)
  where = 'held-out' if r2_test is not None else 'training'
  message = (f'R2 {judged:.4f} on {where} points (threshold {config.min_r2}).' if fits else
             f'The best of {len(scored)} distinct formulas reaches R2 {judged:.4f} on {where} points,'
             f' below the threshold {config.min_r2}: {formula}')
  return Explanation(
      formula=formula, fits=fits, r2_train=float(r2_train),
      r2_test=None if r2_test is None else float(r2_test), constants=best.constants,
      skeleton=best.tokens, names=names, target=target, candidates=len(scored),
      wall_time_s=time.perf_counter() - start, message=message)


def trials_to_arrays(problem, trials, metric: str | None = None,
                     parameters: Sequence[str] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int]:
  """Completed Vizier trials -> (x, y, names, dropped). Infeasible / metric-less trials are dropped.

  `problem` is a `vizier.pyvizier.ProblemStatement` (or StudyConfig); `metric` defaults to its
  single metric; `parameters` picks inputs (default: all). Categorical parameters have no
  closed form and are refused by name.
  """
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  metrics = [m.name for m in problem.metric_information]
  if metric is None:
    if len(metrics) != 1:
      raise ValueError(f'The study has metrics {metrics}: name the one to explain.')
    metric = metrics[0]
  elif metric not in metrics:
    raise ValueError(f'Metric {metric!r} is not in the study (it has {metrics}).')
  configs = {p.name: p for p in problem.search_space.parameters}
  names = tuple(parameters) if parameters is not None else tuple(configs)
  for name in names:
    if name not in configs:
      raise ValueError(f'Parameter {name!r} is not in the study (it has {sorted(configs)}).')
    if configs[name].type == vz.ParameterType.CATEGORICAL:
      raise ValueError(f'Parameter {name!r} is categorical: a formula needs numeric inputs.'
                       ' Leave it out with `parameters`.')
  rows, ys, dropped = [], [], 0
  for t in trials:
    m = t.final_measurement
    value = None if (t.infeasible or m is None or metric not in m.metrics) else m.metrics[metric].value
    if value is None or not math.isfinite(value) or any(n not in t.parameters for n in names):
      dropped += 1
      continue
    rows.append([float(t.parameters[n].value) for n in names])
    ys.append(float(value))
  if not rows:
    raise ValueError(f'None of the {len(trials)} trials has a finite {metric!r} and every'
                     ' chosen parameter: nothing to explain.')
  return np.asarray(rows), np.asarray(ys), names, dropped


def explain_trials(problem, trials, *, metric: str | None = None,
                   parameters: Sequence[str] | None = None, model: SymbolicModel | None = None,
                   config: ExplainConfig = ExplainConfig()) -> Explanation:
  """`explain` on a study's completed trials; the message says how many were left out."""
  x, y, names, dropped = trials_to_arrays(problem, trials, metric, parameters)
  result = explain(x, y, names, target=metric or next(iter(problem.metric_information)).name,
                   model=model, config=config)
  if dropped:
    result = attrs.evolve(result, message=f'{result.message} ({dropped} infeasible or'
                          ' incomplete trials left out.)')
  return result
