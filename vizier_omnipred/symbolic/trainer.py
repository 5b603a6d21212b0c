"""Training the symbolic-regression transformer on streamed generated formulas.

    vizier-omnipred explain-pretrain --out runs/symbolic --steps 12000 --threads 1
    torchrun --nproc_per_node=8 -m vizier_omnipred.cli explain-pretrain --out runs/symbolic ...

Same conventions as the surrogate's pretraining (`vizier_omnipred.training`): each rank
generates its batch from (seed, step, rank, i), `last.pt` resumes, `model.pt` ships. The
held-out loss is on samples drawn from seeds above `generator.EVAL_SEED_OFFSET`.
"""

from __future__ import annotations

import os

import attrs
import torch

from vizier_omnipred import checkpoints
from vizier_omnipred.symbolic.generator import EVAL_SEED_OFFSET, generate
from vizier_omnipred.symbolic.model import SymbolicConfig, SymbolicModel
from vizier_omnipred.training import DistEnv, train_loop


@attrs.frozen
class SymbolicTrainConfig:
  """Every knob of a symbolic-regression training run."""

  model: SymbolicConfig = attrs.field(factory=SymbolicConfig, kw_only=True)
  steps: int = attrs.field(default=12_000, kw_only=True)
  batch_size: int = attrs.field(default=32, kw_only=True)  # formulas per rank and step
  learning_rate: float = attrs.field(default=1e-3, kw_only=True)
  min_learning_rate_ratio: float = attrs.field(default=0.05, kw_only=True)
  warmup_steps: int = attrs.field(default=500, kw_only=True)
  weight_decay: float = attrs.field(default=0.01, kw_only=True)
  grad_clip: float = attrs.field(default=1.0, kw_only=True)
  bf16: bool = attrs.field(default=False, kw_only=True)
  eval_every: int = attrs.field(default=500, kw_only=True)
  eval_samples: int = attrs.field(default=256, kw_only=True)
  checkpoint_every: int = attrs.field(default=500, kw_only=True)
  time_limit_s: float | None = attrs.field(default=None, kw_only=True)
  seed: int = attrs.field(default=0, kw_only=True)


def evaluate(model: SymbolicModel, cfg: SymbolicTrainConfig) -> float:
  """Mean token loss on `eval_samples` held-out generated formulas. Deterministic."""
  gen = cfg.model.generator
  total, count = 0.0, 0
  for lo in range(0, cfg.eval_samples, 64):
    batch = [generate(EVAL_SEED_OFFSET + i, gen) for i in range(lo, min(lo + 64, cfg.eval_samples))]
    total += float(model.batch_loss(batch)) * len(batch)
    count += len(batch)
  return total / count


def train(cfg: SymbolicTrainConfig, out_dir: str | os.PathLike, *, resume: bool = True,
          progress: bool = True) -> dict:
  """Runs (or resumes) training; writes `last.pt` (resumable) and `model.pt` (shippable)."""
  env = DistEnv()
  torch.manual_seed(cfg.seed)
  model = SymbolicModel(cfg.model).to(env.device)
  gen = cfg.model.generator

  def batch_loss(net, step):
    samples = [generate((cfg.seed, step, env.rank, i), gen) for i in range(cfg.batch_size)]
    points, targets = model.collate(samples)
    logits = net(points, targets)  # through net's forward: DDP syncs gradients only there
    return model.token_loss(logits, targets)

  return train_loop(
      model, cfg, out_dir, env=env, batch_loss=batch_loss, evaluate=lambda: evaluate(model, cfg),
      save=lambda path, summary: checkpoints.save(
          path, model, card=checkpoints.card_from_summary('symbolic-small', summary)),
      examples_per_step=cfg.batch_size, name='explain-pretrain', resume=resume, progress=progress)
