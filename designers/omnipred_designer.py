"""`OmniPredDesigner`: a Vizier designer whose surrogate is the OmniPred-style LM.

One suggestion:
  1. Feasible completed trials (y warped, see `y_warp`) LoRA-fine-tune the pretrained model,
     warm-starting from the previous suggestion's adapter.
  2. A candidate pool: Halton points plus trust-region moves around the best trials, with
     completed, active and same-batch configurations removed.
  3. The LM samples y for every candidate; an acquisition over the samples ranks them.
  4. The top `count`, kept apart from each other, are returned with their predictions.

Before `num_seed_trials` feasible results it suggests the centre, then Halton points.
Infeasible trials and trials without a finite metric are never fed to the model as numbers:
candidates whose nearest evaluated neighbour failed are ranked last.
"""

from __future__ import annotations

import logging
import time
from typing import Optional, Sequence

import attrs
import numpy as np
import torch
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers import acquisition
from designers.candidates import CandidateSpace, parameter_key
from designers.trust_region import TrustRegion, TrustRegionConfig
from vizier_omnipred import FineTuneConfig, OmniPredRegressor, StudyInfo, default_device
from vizier_omnipred.heap import release_free_memory

_NS = 'omnipred'


@attrs.frozen
class OmniPredDesignerConfig:
  """Every knob of the designer. The defaults were picked on the BBOB benchmark."""

  metric_name: str | None = attrs.field(default=None, kw_only=True)  # None: first objective
  num_seed_trials: int = attrs.field(default=5, kw_only=True)
  num_candidates: int = attrs.field(default=512, kw_only=True)
  local_fraction: float = attrs.field(default=0.6, kw_only=True)  # of the pool
  num_centres: int = attrs.field(default=3, kw_only=True)  # best trials to move around
  num_samples: int = attrs.field(default=16, kw_only=True)
  temperature: float = attrs.field(default=1.0, kw_only=True)
  acquisition: str = attrs.field(default='ucb', kw_only=True,
                                 validator=attrs.validators.in_(tuple(acquisition.ACQUISITIONS)))
  ucb_quantile: float = attrs.field(default=0.9, kw_only=True)
  y_warp: str = attrs.field(default='rank', kw_only=True,
                            validator=attrs.validators.in_(('rank', 'none')))
  fine_tune: FineTuneConfig = attrs.field(
      factory=lambda: FineTuneConfig(learning_rate=3e-3, max_steps=200), kw_only=True)
  # LoRA steps per suggestion once warm-started. 30, not 60: on the BBOB full preset (80
  # studies each) 30 steps won 44 of 80 head-to-head and matched mean regret at 50 trials, at
  # half the fine-tuning time (benchmarks/bbob.py, variant omnipred_60).
  warm_start_steps: int = attrs.field(default=30, kw_only=True)
  trust_region: TrustRegionConfig = attrs.field(factory=TrustRegionConfig, kw_only=True)
  time_budget_s: float | None = attrs.field(default=None, kw_only=True)  # per suggest()
  min_candidates: int = attrs.field(default=64, kw_only=True)  # floor when degrading
  # After a suggestion, freed heap goes back to the OS once resident memory has grown this
  # much since the last time (glibc; elsewhere nothing happens). See vizier_omnipred/heap.py.
  heap_slack_mb: float = attrs.field(default=256.0, kw_only=True)
  checkpoint: str | None = attrs.field(default=None, kw_only=True)  # None: shipped weights
  # Where the surrogate runs. None: 'cuda' when torch sees a GPU, else 'cpu'.
  device: str | None = attrs.field(default=None, kw_only=True)
  # torch threads inside suggest() (restored after; None: leave torch's setting). Seconds per
  # suggestion at 50 trials, 4-D, 2 cores: 1 thread 3.0-3.3 whether or not the other core is
  # busy; 2 threads 2.25 (quiet, OMP_WAIT_POLICY=ACTIVE), 6.8 (ACTIVE, other core busy),
  # 6.2 (PASSIVE, which this package sets on import, quiet).
  torch_threads: int | None = attrs.field(default=1, kw_only=True)

  @device.validator
  def _check_device(self, attribute, value):
    del attribute
    if value is not None:
      try:
        torch.device(value)
      except RuntimeError as e:
        raise ValueError(f'device {value!r} is not a torch device: {e}') from None


class OmniPredDesigner(vza.Designer):
  """LM-surrogate Bayesian optimisation for flat, single-objective Vizier problems."""

  def __init__(
      self,
      problem: vz.ProblemStatement,
      *,
      seed: Optional[int] = None,
      config: OmniPredDesignerConfig = OmniPredDesignerConfig(),
      regressor: OmniPredRegressor | None = None,
  ):
    """`regressor` overrides `config.checkpoint` (e.g. a tiny model in tests)."""
    self._problem = problem
    self._config = config
    self._info = StudyInfo.from_problem(problem, config.metric_name)
    self._maximize = self._info.goal == 'MAXIMIZE'
    self._space = CandidateSpace(problem.search_space, seed=0 if seed is None else seed)
    self._rng = np.random.default_rng(seed)
    self._seed = 0 if seed is None else int(seed)
    self._regressor = regressor or OmniPredRegressor.from_pretrained(
        config.checkpoint, device=config.device or default_device())
    self._regressor.set_study(problem, study=self._info)
    self._completed: list[vz.Trial] = []
    self._active: list[vz.Trial] = []
    self._region = TrustRegion(config.trust_region)
    self._best: float | None = None  # oriented: larger is better
    self._fed_best = 0.0  # best y as fed to the model (warped), oriented
    self._tuned_once = False
    self._seconds_per_candidate: float | None = None
    self.last_report: dict = {}

  @classmethod
  def from_problem(cls, problem: vz.ProblemStatement, seed: Optional[int] = None,
                   **kwargs) -> 'OmniPredDesigner':
    return cls(problem, seed=seed, **kwargs)

  # --- state ----------------------------------------------------------------------------
  def _value(self, trial: vz.Trial) -> float | None:
    """Oriented metric value, or None when the trial gives no usable number."""
    if trial.infeasible or trial.final_measurement is None:
      return None
    metric = trial.final_measurement.metrics.get(self._info.metric_name)
    if metric is None or not np.isfinite(metric.value):
      return None
    return float(metric.value) if self._maximize else -float(metric.value)

  def update(self, completed: vza.CompletedTrials, all_active: vza.ActiveTrials) -> None:
    new = list(completed.trials)
    self._completed.extend(new)
    self._active = list(all_active.trials)
    values = [v for v in map(self._value, new) if v is not None]
    if values:
      improved = self._best is None or max(values) > self._best
      if self._best is not None:
        self._region.observe(improved)
      self._best = max(values) if self._best is None else max(self._best, max(values))

  @property
  def _feasible(self) -> list[tuple[vz.Trial, float]]:
    pairs = [(t, self._value(t)) for t in self._completed]
    return [(t, v) for t, v in pairs if v is not None]

  # --- suggest --------------------------------------------------------------------------
  def suggest(self, count: Optional[int] = None) -> Sequence[vz.TrialSuggestion]:
    count = count or 1
    start = time.perf_counter()
    taken = {parameter_key(t.parameters) for t in self._completed + self._active}
    if len(self._feasible) < max(2, self._config.num_seed_trials):
      return self._seed_suggestions(count, taken)
    previous = torch.get_num_threads()
    if self._config.torch_threads:
      torch.set_num_threads(self._config.torch_threads)
    try:
      return self._model_suggestions(count, taken, start)
    finally:
      torch.set_num_threads(previous)
      release_free_memory(self._config.heap_slack_mb)  # see vizier_omnipred/heap.py

  def _seed_suggestions(self, count: int, taken: set) -> list[vz.TrialSuggestion]:
    points = []
    if not self._completed and not self._active:
      points.append(self._space.centre())
    points.append(self._space.quasi_random(4 * count + 16))
    out = self._pick(np.concatenate(points), None, count, taken)
    for s in out:
      s.metadata.ns(_NS)['phase'] = 'seed'
    return out

  def _fit(self, deadline: float | None) -> dict:
    cfg = self._config
    pairs = self._feasible
    y = np.asarray([v for _, v in pairs])
    if cfg.y_warp == 'rank':
      y = (np.argsort(np.argsort(y, kind='stable'), kind='stable') / max(1, len(y) - 1))
    self._fed_best = float(y.max())  # in the units the model predicts, oriented
    if not self._maximize:
      y = -y  # the prompt says MINIMIZE: keep the study's direction
    warm = self._tuned_once
    steps = cfg.warm_start_steps if warm else cfg.fine_tune.max_steps
    budget = None if deadline is None else max(0.0, deadline - time.perf_counter())
    ft = attrs.evolve(cfg.fine_tune, max_steps=steps, seed=self._seed + len(self._completed),
                      time_budget_s=budget)
    report = self._regressor.fine_tune(
        [(t.parameters, float(v)) for (t, _), v in zip(pairs, y)], config=ft, warm_start=warm)
    self._tuned_once = True
    return {'fit_steps': report.steps, 'fit_stopped_by': report.stopped_by,
            'fit_seconds': round(report.seconds, 3), 'warm_start': warm}

  def _pool(self, n: int) -> np.ndarray:
    cfg = self._config
    pairs = sorted(self._feasible, key=lambda p: -p[1])
    centres = self._space.to_unit([t for t, _ in pairs[: cfg.num_centres]])
    n_local = int(round(n * cfg.local_fraction))
    return np.concatenate([
        self._space.local(centres, n_local, self._region.radius, self._rng),
        self._space.quasi_random(n - n_local),
    ])

  def _model_suggestions(self, count: int, taken: set, start: float) -> list[vz.TrialSuggestion]:
    cfg = self._config
    deadline = None if cfg.time_budget_s is None else start + cfg.time_budget_s
    # Fine-tuning may use up to 60% of the budget; sampling gets the rest.
    fit_deadline = None if deadline is None else start + 0.6 * cfg.time_budget_s
    report = self._fit(fit_deadline)
    notes = []
    if report['fit_stopped_by'] == 'time_budget':
      notes.append(f'fine-tuning cut at {report["fit_steps"]} steps (time budget)')
    n = max(cfg.num_candidates, 4 * count)
    if deadline is not None and self._seconds_per_candidate:
      affordable = int((deadline - time.perf_counter()) / self._seconds_per_candidate)
      if affordable < n:
        n_new = max(cfg.min_candidates, count, affordable)
        if n_new < n:
          notes.append(f'candidates {n}->{n_new} (time budget)')
          n = n_new
    unit = self._pool(n)
    params = self._space.to_parameters(unit)
    # With a budget and no cost estimate yet (first model suggestion), sample a probe batch
    # first and size the rest from its measured cost.
    first = n if deadline is None or self._seconds_per_candidate else min(n, cfg.min_candidates)
    samples = self._sample(params[:first])
    if first < n:
      affordable = int((deadline - time.perf_counter()) / self._seconds_per_candidate)
      keep = first + max(0, min(n - first, affordable))
      if keep < n:
        notes.append(f'candidates {n}->{keep} (time budget)')
        n, unit, params = keep, unit[:keep], params[:keep]
      if keep > first:
        samples = np.concatenate([samples, self._sample(params[first:])])
    oriented = samples if self._maximize else -samples
    scores = acquisition.score(cfg.acquisition, oriented, best=self._fed_best, rng=self._rng,
                               quantile=cfg.ucb_quantile)
    scores = np.where(self._near_failure(unit), -np.inf, scores)
    out = self._pick(unit, scores, count, taken, params=params, samples=samples)
    self.last_report = dict(report, candidates=n, seconds=time.perf_counter() - start,
                            radius=self._region.radius, degraded='; '.join(notes))
    for s in out:
      md = s.metadata.ns(_NS)
      md['phase'] = 'model'
      md['acquisition'] = cfg.acquisition
      md['fit_steps'] = str(report['fit_steps'])
      if notes:
        md['degraded'] = '; '.join(notes)
        logging.info('OmniPredDesigner degraded: %s', md['degraded'])
    return out

  def _sample(self, params: list) -> np.ndarray:
    """[n, num_samples] y samples; updates the per-candidate cost estimate."""
    cfg = self._config
    t0 = time.perf_counter()
    samples = self._regressor.sample(params, cfg.num_samples, temperature=cfg.temperature,
                                     seed=int(self._rng.integers(2**31)))
    self._seconds_per_candidate = (time.perf_counter() - t0) / len(params)
    return samples

  def _near_failure(self, unit: np.ndarray) -> np.ndarray:
    """True where the nearest evaluated trial (unit-cube distance) gave no usable value."""
    if not self._completed:
      return np.zeros(len(unit), dtype=bool)
    done = self._space.to_unit(self._completed)
    failed = np.asarray([self._value(t) is None for t in self._completed])
    if not failed.any():
      return np.zeros(len(unit), dtype=bool)
    d2 = ((unit[:, None, :] - done[None, :, :]) ** 2).sum(-1)
    return failed[d2.argmin(axis=1)]

  def _pick(self, unit: np.ndarray, scores: np.ndarray | None, count: int, taken: set, *,
            params: list | None = None, samples: np.ndarray | None = None
            ) -> list[vz.TrialSuggestion]:
    """Best-first, skipping configurations already taken and keeping the batch spread out.

    Always returns `count` suggestions: if the pool runs out of new configurations (a small
    discrete space), fresh Halton points and finally repeats fill the batch.
    """
    params = params if params is not None else self._space.to_parameters(unit)
    order = np.arange(len(unit)) if scores is None else np.argsort(-scores, kind='stable')
    min_dist = 0.5 * self._region.radius if count > 1 else 0.0
    chosen: list[int] = []
    keys = set(taken)
    for relax in (False, True):
      for i in order:
        if len(chosen) == count:
          break
        key = parameter_key(params[i])
        if key in keys:
          continue
        if not relax and chosen and min_dist > 0:
          if np.min(np.linalg.norm(unit[chosen] - unit[i], axis=1)) < min_dist:
            continue
        chosen.append(int(i))
        keys.add(key)
    out = []
    for i in chosen:
      s = vz.TrialSuggestion(params[i])
      if samples is not None:
        s.metadata.ns(_NS)['predicted_median'] = f'{np.median(samples[i]):.6g}'
      out.append(s)
    attempts = 0
    while len(out) < count:
      extra = self._space.to_parameters(self._space.quasi_random(1))[0]
      key = parameter_key(extra)
      attempts += 1
      if key in keys and attempts < 100:
        continue
      keys.add(key)
      out.append(vz.TrialSuggestion(extra))
    return out
