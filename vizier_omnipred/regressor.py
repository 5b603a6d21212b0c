"""`OmniPredRegressor`: fit a pretrained LM on one study's trials, then sample y.

    reg = OmniPredRegressor.from_pretrained()          # the shipped checkpoint
    reg.fine_tune([({'x': 0.3, 'opt': 'adam'}, 1.7), ...])   # or Vizier trials + problem
    samples = reg.sample([{'x': 0.5, 'opt': 'sgd'}], num_samples=64)   # [1, 64]
    pred = reg.predict(rows)                           # median, mean, quantiles

y reaches the model after a per-study affine map of the training range onto [2, 3] (see
`YScaler`): one order of magnitude, so the exponent token is nearly constant and the digits
carry the value; y of any scale (1e-300 .. 1e300, negative, constant) is handled here, not by
the tokens.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import pathlib
import time
from typing import Any, Sequence

import attrs
import numpy as np
import torch
from vizier import pyvizier as vz

from vizier_omnipred import checkpoints
from vizier_omnipred.decoding import sample_ids
from vizier_omnipred.model import LORA_TARGETS, ModelConfig, OmniPredModel
from vizier_omnipred.serialization import Featurizer, ModelInputs, StudyInfo, _plain

Example = Any  # a vz.Trial, or a (parameters mapping, float y) pair


@attrs.frozen
class YScaler:
  """Affine map of the training y range [lo, hi] onto [2, 3]; overflow-safe for any floats."""

  lo: float
  half_span: float  # (hi - lo) / 2, computed without overflow; 0.5 when y is constant

  @classmethod
  def fit(cls, y: np.ndarray) -> 'YScaler':
    y = np.asarray(y, dtype=np.float64)
    lo, hi = float(y.min()), float(y.max())
    half_span = hi / 2 - lo / 2
    if not half_span > 0:
      half_span = max(abs(lo) / 2, 0.5) if lo != 0 else 0.5
    return cls(lo=lo, half_span=half_span)

  def transform(self, y: np.ndarray) -> np.ndarray:
    return 2.0 + (np.asarray(y, np.float64) / 2 - self.lo / 2) / self.half_span

  def inverse(self, z: np.ndarray) -> np.ndarray:
    with np.errstate(over='ignore'):
      out = 2.0 * ((np.asarray(z, np.float64) - 2.0) * self.half_span + self.lo / 2)
    return np.clip(out, -np.finfo(np.float64).max, np.finfo(np.float64).max)


@attrs.frozen
class FineTuneConfig:
  """How to fit one study. `method='lora'` adapts a pretrained model with peft; `'full'`
  trains every weight (the single-task baseline from scratch)."""

  method: str = attrs.field(default='lora', kw_only=True,
                            validator=attrs.validators.in_(('lora', 'full')))
  lora_rank: int = attrs.field(default=16, kw_only=True)
  lora_alpha: float = attrs.field(default=32.0, kw_only=True)
  learning_rate: float = attrs.field(default=3e-3, kw_only=True)
  weight_decay: float = attrs.field(default=0.0, kw_only=True)
  batch_size: int = attrs.field(default=64, kw_only=True)
  max_steps: int = attrs.field(default=500, kw_only=True)
  eval_every: int = attrs.field(default=20, kw_only=True)
  patience: int = attrs.field(default=5, kw_only=True)  # evaluations without improvement
  # LoRA starts on a plateau (B = 0; the model first predicts y's marginal): validation loss
  # on a handful of points stalls or wobbles for a few hundred steps before x starts to
  # matter (measured: stopping at 160 steps gave rank correlation < 0, 500 steps 0.59).
  min_steps: int = attrs.field(default=300, kw_only=True)
  validation_fraction: float = attrs.field(default=0.2, kw_only=True)
  # Below this many validation points, no split and no early stopping: on 30 trials the 6
  # held-out points' loss picked a plateau state (rank corr -0.03 vs 0.59 after 500 steps).
  min_validation: int = attrs.field(default=20, kw_only=True)
  time_budget_s: float | None = attrs.field(default=None, kw_only=True)
  seed: int = attrs.field(default=0, kw_only=True)


@attrs.frozen
class FineTuneReport:
  steps: int
  train_loss: float
  best_validation_loss: float | None
  stopped_by: str  # 'early_stopping', 'max_steps' or 'time_budget'
  seconds: float
  num_train: int
  num_validation: int


@attrs.frozen
class Prediction:
  """Per-row summaries of the sampled y. Arrays are [n] except quantiles [n, len(levels)]."""

  median: np.ndarray
  mean: np.ndarray
  quantile_levels: tuple[float, ...]
  quantiles: np.ndarray
  samples: np.ndarray  # [n, num_samples]


def default_device() -> str:
  """'cuda' when torch sees a GPU, else 'cpu': where a surrogate runs unless told."""
  return 'cuda' if torch.cuda.is_available() else 'cpu'


def _import_peft():
  import peft  # pylint: disable=g-import-not-at-top  # costs seconds: import on first use
  return peft


class OmniPredRegressor:
  """A pretrained OmniPred-style LM, fine-tuned per study and sampled for predictions."""

  def __init__(self, model: OmniPredModel, *, card: dict | None = None):
    self.base = model.eval()
    self.card = card or {}
    self._tuned: torch.nn.Module | None = None  # a fine-tuned copy (peft-wrapped for LoRA)
    self._method: str | None = None
    self.featurizer: Featurizer | None = None
    self.y_scaler: YScaler | None = None
    self._problem: vz.ProblemStatement | None = None

  # --- construction -------------------------------------------------------------------
  @classmethod
  def from_pretrained(cls, path: str | os.PathLike | None = None, *,
                      device: str | torch.device | None = None) -> 'OmniPredRegressor':
    """Loads a checkpoint; with no path, the one shipped inside the package."""
    model, card = checkpoints.load(path, device=device)
    return cls(model, card=card)

  @classmethod
  def from_scratch(cls, config: ModelConfig = ModelConfig(), *, seed: int = 0,
                   device: str | torch.device | None = None) -> 'OmniPredRegressor':
    """An untrained model (random weights from `seed`): the single-task baseline."""
    with torch.random.fork_rng(devices=[]):
      torch.manual_seed(seed)
      model = OmniPredModel(config)
    if device is not None:
      model.to(device)
    return cls(model, card={'name': 'from-scratch', 'seed': seed})

  @property
  def model(self) -> OmniPredModel:
    """The module that predicts now: the fine-tuned one if any, else the base."""
    if self._tuned is None:
      return self.base
    return self._tuned.get_base_model() if self._method == 'lora' else self._tuned

  # --- data -----------------------------------------------------------------------------
  def set_study(self, problem: vz.ProblemStatement | None = None, *,
                study: StudyInfo | None = None) -> None:
    """Binds the regressor to a study's search space and metadata (validation, prompt).

    Also imports peft (and transformers behind it, ~5 s once per process) now, so that the
    first `fine_tune`, and a designer's first time budget, are not charged with it.
    """
    self.featurizer = Featurizer(problem, study=study, config=self.base.model_config.featurizer)
    _import_peft()
    self._problem = problem

  def _rows_and_y(self, examples: Sequence[Example]) -> tuple[list[dict], np.ndarray]:
    rows, ys = [], []
    metric = self.featurizer.study.metric_name if self._problem is not None else None
    for i, ex in enumerate(examples):
      if isinstance(ex, vz.Trial):
        rows.append(_plain(ex.parameters))
        ys.append(_trial_y(i, ex, metric))
      elif isinstance(ex, (tuple, list)) and len(ex) == 2:
        rows.append(_plain(ex[0]))
        try:
          ys.append(float(ex[1]))
        except (TypeError, ValueError):
          raise ValueError(f'Example {i}: y must be a number, got {ex[1]!r}.') from None
      else:
        raise TypeError(
            f'Example {i}: expected a vz.Trial or a (parameters, y) pair, got {type(ex).__name__}.'
        )
    y = np.asarray(ys, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
      raise ValueError(f'Example {bad[0]}: y is {float(y[bad[0]])!r}; y must be finite.')
    return rows, y

  def _featurize(self, rows: Sequence[Any]) -> ModelInputs:
    if self.featurizer is None:
      self.set_study(None)
    return self.featurizer.featurize(rows)

  # --- fitting --------------------------------------------------------------------------
  def fine_tune(
      self,
      examples: Sequence[Example],
      *,
      problem: vz.ProblemStatement | None = None,
      config: FineTuneConfig = FineTuneConfig(),
      warm_start: bool = False,
  ) -> FineTuneReport:
    """Fits the model to one study. Trials need a final measurement of the study metric.

    `warm_start=True` continues from the previous fine-tuning of the same method (the
    designer's path: a few steps per new trial instead of a fit from the base).
    """
    if problem is not None:
      self.set_study(problem)
    elif self.featurizer is None:
      self.set_study(None)
    rows, y = self._rows_and_y(examples)
    if len(rows) < 2:
      raise ValueError(f'fine_tune needs at least 2 examples, got {len(rows)}.')
    inputs = self.featurizer.featurize(rows)
    self.y_scaler = YScaler.fit(y)
    y_ids = self.base.model_config.y_codec.encode_many(self.y_scaler.transform(y))

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
      torch.manual_seed(config.seed)
      gen = torch.Generator().manual_seed(config.seed)
      if not (warm_start and self._tuned is not None and self._method == config.method):
        self._tuned = self._fresh_trainable(config)
        self._method = config.method
      return self._train(inputs, y_ids, config, gen, start)

  def _fresh_trainable(self, config: FineTuneConfig) -> torch.nn.Module:
    model = copy.deepcopy(self.base)
    if config.method == 'full':
      return model
    peft = _import_peft()
    lora = peft.LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
        target_modules=list(LORA_TARGETS), bias='none',
    )
    return peft.get_peft_model(model, lora)

  def _train(self, inputs, y_ids, config, gen, start) -> FineTuneReport:
    n = len(y_ids)
    order = torch.randperm(n, generator=gen).numpy()
    n_val = int(round(n * config.validation_fraction))
    if n_val < config.min_validation or n - n_val < 2:
      n_val = 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    net = self._tuned
    core = self.model
    tensors = core.to_tensors(inputs)
    y_t = torch.as_tensor(y_ids, device=core.device)
    train = ({k: v[train_idx] for k, v in tensors.items()}, y_t[train_idx])
    val = ({k: v[val_idx] for k, v in tensors.items()}, y_t[val_idx]) if n_val else None
    params = [p for p in net.parameters() if p.requires_grad]
    # foreach: one kernel per op over all ~100 small LoRA tensors (the CPU default loops).
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay,
                            foreach=True)
    best_loss, best_state, bad_evals = math.inf, None, 0
    stopped_by, step, loss_value = 'max_steps', 0, math.nan
    n_train = len(train_idx)
    net.train()
    for step in range(1, config.max_steps + 1):
      idx = torch.randperm(n_train, generator=gen)[: config.batch_size]
      loss = core.loss({k: v[idx] for k, v in train[0].items()}, train[1][idx])
      opt.zero_grad(set_to_none=True)
      loss.backward()
      torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
      opt.step()
      loss_value = loss.item()
      if val is not None and step % config.eval_every == 0:
        net.eval()
        with torch.no_grad():
          v = float(core.loss(*val))
        net.train()
        if v < best_loss - 1e-4:
          best_loss, bad_evals = v, 0
          best_state = {k: p.detach().clone() for k, p in net.named_parameters() if p.requires_grad}
        else:
          bad_evals += 1
          if bad_evals >= config.patience and step >= config.min_steps:
            stopped_by = 'early_stopping'
            break
      if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
        stopped_by = 'time_budget'
        break
    if best_state is not None:
      with torch.no_grad():
        for k, p in net.named_parameters():
          if k in best_state:
            p.copy_(best_state[k])
    net.eval()
    return FineTuneReport(
        steps=step, train_loss=loss_value,
        best_validation_loss=None if best_state is None else best_loss,
        stopped_by=stopped_by, seconds=time.perf_counter() - start,
        num_train=n_train, num_validation=n_val,
    )

  # --- prediction -----------------------------------------------------------------------
  @contextlib.contextmanager
  def _merged(self):
    """LoRA merged into the weights while sampling (unmerged sampling is ~28% slower)."""
    if self._tuned is not None and self._method == 'lora':
      self._tuned.merge_adapter()
      try:
        yield
      finally:
        self._tuned.unmerge_adapter()
    else:
      yield

  def sample(self, rows: Sequence[Any], num_samples: int = 64, *, temperature: float = 1.0,
             seed: int | None = 0, batch_size: int = 512) -> np.ndarray:
    """-> [n, num_samples] float64 y samples in the study's units."""
    inputs = self._featurize(rows)
    gen = torch.Generator(device=self.model.device)
    if seed is None:
      gen.seed()
    else:
      gen.manual_seed(seed)
    codec = self.base.model_config.y_codec
    out = np.empty((len(inputs), num_samples), dtype=np.float64)
    with self._merged(), torch.inference_mode():
      model = self.model
      for lo in range(0, len(inputs), batch_size):
        part = model.to_tensors(inputs.select(slice(lo, lo + batch_size)))
        ids = sample_ids(model, part, num_samples, temperature=temperature, generator=gen)
        out[lo:lo + len(ids)] = codec.decode_many(ids.cpu().numpy())
    if self.y_scaler is not None:
      out = self.y_scaler.inverse(out)
    return out

  def predict(self, rows: Sequence[Any], num_samples: int = 64, *,
              quantiles: Sequence[float] = (0.1, 0.5, 0.9), temperature: float = 1.0,
              seed: int | None = 0) -> Prediction:
    """Median (OmniPred's point prediction), mean and quantiles of the samples."""
    samples = self.sample(rows, num_samples, temperature=temperature, seed=seed)
    levels = tuple(float(q) for q in quantiles)
    return Prediction(
        median=np.median(samples, axis=1), mean=samples.mean(axis=1),
        quantile_levels=levels,
        quantiles=np.quantile(samples, levels, axis=1).T if levels else np.empty((len(samples), 0)),
        samples=samples,
    )

  # --- adapters -------------------------------------------------------------------------
  def save_adapter(self, path: str | os.PathLike) -> None:
    """Saves the LoRA weights and the y scaling: enough to restore predictions on this base."""
    if self._method != 'lora' or self._tuned is None:
      raise ValueError('save_adapter needs a LoRA fine-tuning first (fine_tune(method="lora")).')
    peft = _import_peft()
    state = peft.get_peft_model_state_dict(self._tuned)
    cfg = self._tuned.peft_config['default']
    torch.save({
        'format': 'vizier-omnipred-adapter/1',
        'lora': {'r': cfg.r, 'lora_alpha': cfg.lora_alpha},
        'state': {k: v.detach().cpu() for k, v in state.items()},
        'y_scaler': [self.y_scaler.lo, self.y_scaler.half_span],
    }, pathlib.Path(path))

  def load_adapter(self, path: str | os.PathLike) -> None:
    blob = torch.load(pathlib.Path(path), weights_only=True, map_location=self.base.device)
    if blob.get('format') != 'vizier-omnipred-adapter/1':
      raise ValueError(f'{path} is not a vizier-omnipred adapter file.')
    peft = _import_peft()
    config = FineTuneConfig(lora_rank=int(blob['lora']['r']),
                            lora_alpha=float(blob['lora']['lora_alpha']))
    self._tuned = self._fresh_trainable(config)
    self._method = 'lora'
    peft.set_peft_model_state_dict(self._tuned, blob['state'])
    self._tuned.eval()
    self.y_scaler = YScaler(*blob['y_scaler'])


def _trial_y(i: int, trial: vz.Trial, metric: str | None) -> float:
  where = f'Trial {i} (id {trial.id})'
  if trial.infeasible:
    raise ValueError(f'{where} is infeasible; pass only feasible trials to fine_tune.')
  fm = trial.final_measurement
  if fm is None:
    raise ValueError(f'{where} has no final measurement; it is not completed.')
  if metric is None or metric not in fm.metrics:
    names = list(fm.metrics)
    if metric is None and len(names) == 1:
      metric = names[0]
    else:
      raise ValueError(f'{where} has no metric {metric!r}; it has {names}.')
  return float(fm.metrics[metric].value)
