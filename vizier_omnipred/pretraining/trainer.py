"""Multi-task pretraining on streamed synthetic studies: one CPU, one GPU, or many via torchrun.

    vizier-omnipred pretrain --steps 20000 --out runs/small          # one process
    torchrun --nproc_per_node=8 -m vizier_omnipred.cli pretrain ...   # DistributedDataParallel

Each rank draws its own studies from (seed, step, rank), so the stream is deterministic and
resuming needs no data state: a checkpoint holds the model, the optimizer and the step.
y is mapped onto [2, 3] with `YScaler` as in `OmniPredRegressor.fine_tune`, but from each
study's fixed reference range, so a recurring study has the same targets on every visit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import pathlib
import time

import attrs
import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from vizier_omnipred import checkpoints
from vizier_omnipred.model import ModelConfig, OmniPredModel, num_parameters
from vizier_omnipred.pretraining.corpus import CorpusConfig, SyntheticStudy, EVAL_SEED_OFFSET
from vizier_omnipred.regressor import YScaler
from vizier_omnipred.serialization import Featurizer, ModelInputs


@attrs.frozen
class TrainConfig:
  """Every knob of a pretraining run."""

  model: ModelConfig = attrs.field(factory=ModelConfig, kw_only=True)
  corpus: CorpusConfig = attrs.field(factory=CorpusConfig, kw_only=True)
  steps: int = attrs.field(default=20_000, kw_only=True)
  studies_per_batch: int = attrs.field(default=8, kw_only=True)  # per rank
  trials_per_study: int = attrs.field(default=32, kw_only=True)
  learning_rate: float = attrs.field(default=1e-3, kw_only=True)
  min_learning_rate_ratio: float = attrs.field(default=0.05, kw_only=True)
  warmup_steps: int = attrs.field(default=300, kw_only=True)
  weight_decay: float = attrs.field(default=0.01, kw_only=True)
  grad_clip: float = attrs.field(default=1.0, kw_only=True)
  bf16: bool = attrs.field(default=False, kw_only=True)
  eval_every: int = attrs.field(default=500, kw_only=True)
  eval_studies: int = attrs.field(default=48, kw_only=True)
  checkpoint_every: int = attrs.field(default=500, kw_only=True)
  time_limit_s: float | None = attrs.field(default=None, kw_only=True)
  seed: int = attrs.field(default=0, kw_only=True)


def study_batch(studies: list[SyntheticStudy], trials_per_study: int, rng: np.random.Generator,
                model_config: ModelConfig) -> tuple[ModelInputs, np.ndarray]:
  """Featurises `trials_per_study` trials of each study; -> (inputs, y slot ids [n, T])."""
  parts, ids = [], []
  codec = model_config.y_codec
  for study in studies:
    rows = study.sample_parameters(trials_per_study, rng)
    y = study.evaluate(rows, rng)
    parts.append(Featurizer(study.problem, config=model_config.featurizer).featurize(rows))
    ids.append(codec.encode_many(YScaler.fit(np.asarray(study.y_range)).transform(y)))
  return ModelInputs.concatenate(parts), np.concatenate(ids)


@functools.lru_cache(maxsize=8192)
def _train_study(seed: int, corpus: CorpusConfig) -> SyntheticStudy:
  """Pool studies recur: build each once per process."""
  return SyntheticStudy(seed, corpus, split='train')


def _lr(step: int, cfg: TrainConfig) -> float:
  if step < cfg.warmup_steps:
    return cfg.learning_rate * (step + 1) / cfg.warmup_steps
  frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
  cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
  return cfg.learning_rate * (cfg.min_learning_rate_ratio + (1 - cfg.min_learning_rate_ratio) * cos)


class _Dist:
  """Rank/world from torchrun's environment; a no-op on one process."""

  def __init__(self):
    self.world = int(os.environ.get('WORLD_SIZE', '1'))
    self.rank = int(os.environ.get('RANK', '0'))
    self.local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if self.world > 1 and not dist.is_initialized():
      backend = 'nccl' if torch.cuda.is_available() else 'gloo'
      dist.init_process_group(backend)
    if torch.cuda.is_available():
      self.device = torch.device('cuda', self.local_rank)
      torch.cuda.set_device(self.device)
    else:
      self.device = torch.device('cpu')

  @property
  def main(self) -> bool:
    return self.rank == 0

  def mean(self, value: float) -> float:
    if self.world == 1:
      return value
    t = torch.tensor([value], dtype=torch.float64, device=self.device)
    dist.all_reduce(t)
    return float(t) / self.world

  def close(self):
    if self.world > 1 and dist.is_initialized():
      # Rank 0 evaluates and saves last; tearing gloo down on the other ranks meanwhile
      # aborts them ("terminate called without an active exception").
      dist.barrier()
      dist.destroy_process_group()


def evaluate(model: OmniPredModel, cfg: TrainConfig, device: torch.device) -> float:
  """Mean token loss on held-out studies (held-out functions, disjoint seeds). Deterministic."""
  rng = np.random.default_rng(EVAL_SEED_OFFSET + cfg.seed)
  studies = [SyntheticStudy(EVAL_SEED_OFFSET + cfg.seed + i, cfg.corpus, split='eval')
             for i in range(cfg.eval_studies)]
  total, count = 0.0, 0
  model.eval()
  with torch.no_grad():
    for lo in range(0, len(studies), 8):
      inputs, ids = study_batch(studies[lo:lo + 8], cfg.trials_per_study, rng, cfg.model)
      t = model.to_tensors(inputs)
      loss = model.loss(t, torch.as_tensor(ids, device=device))
      total += float(loss) * len(ids)
      count += len(ids)
  model.train()
  return total / count


def train(cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = True,
          progress: bool = True) -> dict:
  """Runs (or resumes) pretraining; writes `last.pt` (resumable) and `model.pt` (shippable)."""
  out = pathlib.Path(out_dir)
  env = _Dist()
  if env.main:
    out.mkdir(parents=True, exist_ok=True)
  torch.manual_seed(cfg.seed)
  model = OmniPredModel(cfg.model).to(env.device)
  opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                          weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
  step, history, elapsed_before = 0, [], 0.0
  last = out / 'last.pt'
  if resume and last.exists():
    blob = torch.load(last, map_location=env.device, weights_only=True)
    model.load_state_dict(blob['model'])
    opt.load_state_dict(blob['optimizer'])
    step, history = int(blob['step']), json.loads(blob['history'])
    elapsed_before = float(blob['elapsed_s'])
  net = model
  if env.world > 1:
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[env.local_rank] if env.device.type == 'cuda' else None)
  autocast = (torch.autocast(env.device.type, dtype=torch.bfloat16) if cfg.bf16
              else contextlib.nullcontext())
  start = time.perf_counter()
  bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and env.main),
             desc='pretrain', dynamic_ncols=True)
  examples, tick = 0, time.perf_counter()
  model.train()
  while step < cfg.steps:
    rng = np.random.default_rng([cfg.seed, step, env.rank])
    pool = cfg.corpus.pool_size or EVAL_SEED_OFFSET
    studies = [_train_study(int(s), cfg.corpus) for s in rng.integers(0, pool, cfg.studies_per_batch)]
    inputs, ids = study_batch(studies, cfg.trials_per_study, rng, cfg.model)
    for group in opt.param_groups:
      group['lr'] = _lr(step, cfg)
    with autocast:
      if env.world > 1:
        loss = _ddp_loss(net, model, inputs, ids, env.device)
      else:
        loss = model.loss(model.to_tensors(inputs), torch.as_tensor(ids, device=env.device))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    step += 1
    examples += len(ids) * env.world
    now = time.perf_counter()
    loss_value = loss.item()
    bar.set_postfix(loss=f'{loss_value:.3f}', ex_s=f'{examples / (now - tick):.0f}')
    bar.update(1)
    timed_out = cfg.time_limit_s is not None and elapsed_before + now - start > cfg.time_limit_s
    if step % cfg.eval_every == 0 or step == cfg.steps or timed_out:
      val = evaluate(model, cfg, env.device) if env.main else 0.0
      history.append({'step': step, 'train_loss': env.mean(loss_value), 'val_loss': val,
                      'elapsed_s': elapsed_before + now - start})
      if env.main:
        bar.write(f'step {step}: train {history[-1]["train_loss"]:.4f} val {val:.4f}')
    if env.main and (step % cfg.checkpoint_every == 0 or step == cfg.steps or timed_out):
      torch.save({'model': model.state_dict(), 'optimizer': opt.state_dict(), 'step': step,
                  'history': json.dumps(history),
                  'elapsed_s': elapsed_before + time.perf_counter() - start}, last)
    if timed_out:
      break
  bar.close()
  summary = {
      'steps': step, 'num_parameters': num_parameters(model),
      'wall_time_s': round(elapsed_before + time.perf_counter() - start, 1),
      'examples_per_step': cfg.studies_per_batch * cfg.trials_per_study * env.world,
      'world_size': env.world, 'device': str(env.device),
      'final_val_loss': history[-1]['val_loss'] if history else None,
      'seed': cfg.seed, 'train_config': _jsonable(attrs.asdict(cfg)),
      'history': history,
  }
  if env.main:
    checkpoints.save(out / 'model.pt', model, card=_card(summary))
    (out / 'summary.json').write_text(json.dumps(summary, indent=1))
  env.close()
  return summary


def _ddp_loss(net, model, inputs, ids, device):
  """DDP must see the call through its own forward to sync gradients."""
  logits = net(model.to_tensors(inputs), torch.as_tensor(ids, device=device))
  target = torch.as_tensor(ids, device=device) + model.slot_offsets
  return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                           target.reshape(-1))


def _jsonable(d):
  return json.loads(json.dumps(d, default=str))


def _card(summary: dict) -> dict:
  """Flat, weights_only-loadable card (strings and numbers only)."""
  return {
      'name': 'omnipred-small', 'steps': summary['steps'],
      'num_parameters': summary['num_parameters'], 'wall_time_s': summary['wall_time_s'],
      'world_size': summary['world_size'], 'device': summary['device'],
      'final_val_loss': summary['final_val_loss'], 'seed': summary['seed'],
      'train_config': json.dumps(summary['train_config']),
  }
