"""Test-time training of the in-context model on one study (peft LoRA, or every weight).

The model already regresses in context; these steps train it on random context/query splits
of the study's own trials (`episodes.episode`), as pretraining does on synthetic studies.
`FineTuner` holds the trained copy of the base model and its adapter: it merges LoRA into the
weights while sampling, and saves and loads the adapter.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import pathlib
import time
from typing import Callable

import attrs
import numpy as np
import torch

from vizier_omnipred.model import LORA_TARGETS, OmniPredModel
from vizier_omnipred.serialization import StudyInputs

ADAPTER_FORMAT = 'vizier-omnipred-adapter/1'
# Gradient norm clip of every test-time step (the pretraining trainer clips at the same).
MAX_GRAD_NORM = 1.0
# (order of the study's trials, number of context trials) -> (inputs, target ids)
EpisodeFn = Callable[[np.ndarray, int], tuple[StudyInputs, np.ndarray]]


@attrs.frozen
class FineTuneConfig:
  """Test-time adaptation to one study. `method='lora'` adapts the pretrained weights with
  peft; `'full'` trains every weight. max_steps 0: zero-shot, the trials are only the
  context."""

  method: str = attrs.field(default='lora', kw_only=True,
                            validator=attrs.validators.in_(('lora', 'full')))
  lora_rank: int = attrs.field(default=8, kw_only=True)
  lora_alpha: float = attrs.field(default=16.0, kw_only=True)
  learning_rate: float = attrs.field(default=1e-3, kw_only=True)
  weight_decay: float = attrs.field(default=0.0, kw_only=True)
  max_steps: int = attrs.field(default=50, kw_only=True)
  episodes_per_step: int = attrs.field(default=4, kw_only=True)
  # Each episode asks for this share of the trials (at least one), the rest are its context.
  min_query_fraction: float = attrs.field(default=0.1, kw_only=True)
  max_query_fraction: float = attrs.field(default=0.5, kw_only=True)
  time_budget_s: float | None = attrs.field(default=None, kw_only=True)
  seed: int = attrs.field(default=0, kw_only=True)


@attrs.frozen
class FineTuneReport:
  steps: int
  train_loss: float
  stopped_by: str  # 'max_steps', 'time_budget' or 'zero_shot'
  seconds: float
  num_context: int


def import_peft():
  import peft  # pylint: disable=g-import-not-at-top  # costs seconds: import on first use
  return peft


class FineTuner:
  """The fine-tuned copy of one base model (none until `start`)."""

  def __init__(self, base: OmniPredModel):
    self.base = base
    self.tuned: torch.nn.Module | None = None  # peft-wrapped for LoRA
    self.method: str | None = None

  @property
  def model(self) -> OmniPredModel:
    """The module that predicts now: the fine-tuned one if any, else the base."""
    if self.tuned is None:
      return self.base
    return self.tuned.get_base_model() if self.method == 'lora' else self.tuned

  def reset(self) -> None:
    self.tuned, self.method = None, None

  def start(self, config: FineTuneConfig, warm_start: bool) -> None:
    """A fresh trainable copy, unless `warm_start` and one of the same method exists."""
    if not (warm_start and self.tuned is not None and self.method == config.method):
      self.tuned, self.method = self._fresh(config), config.method

  def _fresh(self, config: FineTuneConfig) -> torch.nn.Module:
    model = copy.deepcopy(self.base)
    if config.method == 'full':
      return model
    peft = import_peft()
    lora = peft.LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                           target_modules=list(LORA_TARGETS), bias='none')
    return peft.get_peft_model(model, lora)

  def train(self, config: FineTuneConfig, n: int, episode: EpisodeFn,
            rng: np.random.Generator, start: float) -> FineTuneReport:
    """`config.max_steps` steps on episodes of the study's `n` trials."""
    net, core = self.tuned, self.model
    params = [p for p in net.parameters() if p.requires_grad]
    # foreach: one kernel per op over all ~100 small LoRA tensors (the CPU default loops).
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay,
                            foreach=True)
    stopped_by, step, loss_value = 'max_steps', 0, math.nan
    net.train()
    for step in range(1, config.max_steps + 1):
      parts, targets = [], []
      for _ in range(config.episodes_per_step):
        share = rng.uniform(config.min_query_fraction, config.max_query_fraction)
        num_queries = int(np.clip(round(n * share), 1, n - 2))
        inputs, ids = episode(rng.permutation(n), n - num_queries)
        parts.append(inputs)
        targets.append(ids)
      loss = core.loss(core.to_tensors(StudyInputs.stack(parts)),
                       torch.as_tensor(np.concatenate(targets), device=core.device))
      opt.zero_grad(set_to_none=True)
      loss.backward()
      torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM, foreach=True)
      opt.step()
      loss_value = loss.item()
      if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
        stopped_by = 'time_budget'
        break
    net.eval()
    return FineTuneReport(steps=step, train_loss=loss_value, stopped_by=stopped_by,
                          seconds=time.perf_counter() - start, num_context=n)

  @contextlib.contextmanager
  def merged(self):
    """LoRA merged into the weights while sampling (unmerged sampling is ~28% slower)."""
    if self.tuned is not None and self.method == 'lora':
      self.tuned.merge_adapter()
      try:
        yield
      finally:
        self.tuned.unmerge_adapter()
    else:
      yield

  def save_adapter(self, path: str | os.PathLike) -> None:
    if self.method != 'lora' or self.tuned is None:
      raise ValueError('save_adapter needs a LoRA fine-tuning first (fine_tune(method="lora")).')
    state = import_peft().get_peft_model_state_dict(self.tuned)
    cfg = self.tuned.peft_config['default']
    torch.save({
        'format': ADAPTER_FORMAT,
        'lora': {'r': cfg.r, 'lora_alpha': cfg.lora_alpha},
        'state': {k: v.detach().cpu() for k, v in state.items()},
    }, pathlib.Path(path))

  def load_adapter(self, path: str | os.PathLike) -> None:
    blob = torch.load(pathlib.Path(path), weights_only=True, map_location=self.base.device)
    if blob.get('format') != ADAPTER_FORMAT:
      raise ValueError(f'{path} is not a vizier-omnipred adapter file.')
    config = FineTuneConfig(lora_rank=int(blob['lora']['r']),
                            lora_alpha=float(blob['lora']['lora_alpha']))
    self.tuned, self.method = self._fresh(config), 'lora'
    import_peft().set_peft_model_state_dict(self.tuned, blob['state'])
    self.tuned.eval()
