"""The training loop both pretrainers share: one CPU, one GPU, or many ranks via torchrun.

    torchrun --nproc_per_node=8 -m vizier_omnipred.cli pretrain ...      # or: explain-pretrain

Data is streamed: each rank builds its batch from (seed, step, rank), so the stream is
deterministic and resuming needs no data state. `last.pt` in the run directory holds the
model, the optimizer, the step and the history; `model.pt` is the shippable checkpoint that
the caller's `save` writes. Learning rate: linear warm-up, then cosine to
`min_learning_rate_ratio` of the peak, over the steps or the time limit, whichever is shorter.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import time
from typing import Callable, Protocol

import concurrent.futures
import multiprocessing

import attrs
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm


# Steps between reads of the training loss (for the progress bar); evaluations read it too.
LOSS_READ_EVERY = 10


class LoopConfig(Protocol):
  """The fields of a trainer config that the loop reads."""

  steps: int
  learning_rate: float
  min_learning_rate_ratio: float
  warmup_steps: int
  weight_decay: float
  grad_clip: float
  bf16: bool
  eval_every: int
  checkpoint_every: int
  time_limit_s: float | None
  seed: int


class Prefetcher:
  """Builds the batches of the coming steps in worker processes while the caller trains.

  `build(step)` must be a picklable, deterministic function of the step; `get(step)` returns
  its result and queues the next `depth` steps. depth 0 builds in this process. On a GPU the
  batches (synthetic studies, CPU-bound) are the bottleneck: give it `workers` CPU cores.
  """

  def __init__(self, build: Callable[[int], object], *, depth: int, workers: int = 1):
    self._build = build
    self._depth = max(depth, workers) if depth > 0 else 0
    self._pending: dict[int, concurrent.futures.Future] = {}
    self._pool = None
    if depth > 0:
      self._pool = concurrent.futures.ProcessPoolExecutor(
          max_workers=workers, mp_context=multiprocessing.get_context('spawn'))

  def get(self, step: int):
    if self._pool is None:
      return self._build(step)
    for s in list(self._pending):
      if s < step:  # a resumed or restarted caller skipped these
        self._pending.pop(s).cancel()
    for s in range(step, step + self._depth + 1):
      if s not in self._pending:
        self._pending[s] = self._pool.submit(self._build, s)
    return self._pending.pop(step).result()

  def __enter__(self) -> 'Prefetcher':
    return self

  def __exit__(self, *exc) -> None:
    if self._pool is not None:
      self._pool.shutdown(wait=False, cancel_futures=True)


def cosine_lr(step: int, cfg: LoopConfig, elapsed_s: float = 0.0) -> float:
  """Linear warm-up over `warmup_steps`, then cosine to `min_learning_rate_ratio` of the peak.
  With a time limit the cosine follows whichever runs out first, the steps or the seconds
  (`elapsed_s` of `time_limit_s`), so a run stopped by its limit still ends annealed: a run on
  a lent machine for a fixed time need not guess its steps per second."""
  if step < cfg.warmup_steps:
    return cfg.learning_rate * (step + 1) / cfg.warmup_steps
  frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
  if cfg.time_limit_s:
    frac = max(frac, elapsed_s / cfg.time_limit_s)
  cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
  return cfg.learning_rate * (cfg.min_learning_rate_ratio + (1 - cfg.min_learning_rate_ratio) * cos)


class DistEnv:
  """Rank/world from torchrun's environment; a no-op on one process."""

  def __init__(self):
    self.world = int(os.environ.get('WORLD_SIZE', '1'))
    self.rank = int(os.environ.get('RANK', '0'))
    self.local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if self.world > 1 and not dist.is_initialized():
      dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
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


def train_loop(
    model: nn.Module,
    cfg: LoopConfig,
    out_dir: str | os.PathLike,
    *,
    env: DistEnv,
    batch_loss: Callable[[nn.Module, int], torch.Tensor],
    evaluate: Callable[[], float | dict],
    save: Callable[[pathlib.Path, dict], None],
    examples_per_step: int,
    name: str,
    resume: bool = True,
    progress: bool = True,
    evaluate_start: bool = False,
) -> dict:
  """Trains `model` (already on env.device) to cfg.steps; returns the run summary.

  batch_loss(net, step): the loss of this rank's batch at `step`, computed through `net`'s
  forward (DDP syncs gradients only through it). evaluate(): held-out loss, run on rank 0 (a
  float, or a dict with 'mean' and further entries that go into the history as they are).
  save(path, summary): writes the shippable checkpoint, on rank 0. evaluate_start: a fresh
  run evaluates its starting weights first (a run that continues other weights, so its
  history has its own start on its own held-out episodes).
  """
  out = pathlib.Path(out_dir)
  run_info = {'train_config': jsonable(attrs.asdict(cfg)), 'seed': cfg.seed,
              'examples_per_step': examples_per_step * env.world, 'world_size': env.world,
              'device': str(env.device),
              **({'device_name': torch.cuda.get_device_name(env.device)}
                 if env.device.type == 'cuda' else {})}
  if env.main:
    out.mkdir(parents=True, exist_ok=True)
    # What a snapshot of last.pt needs besides the weights (model_card --snapshot).
    (out / 'run.json').write_text(json.dumps(run_info, indent=1))
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
  bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and env.main), desc=name,
             dynamic_ncols=True)
  examples, tick = 0, time.perf_counter()
  loss_value = None

  def evaluate_now() -> tuple[float, dict]:
    if not env.main:
      return 0.0, {}
    model.eval()
    with torch.no_grad():
      val = evaluate()
    model.train()
    if isinstance(val, dict):  # {'mean': ..., other per-split losses}
      return val['mean'], {k: v for k, v in val.items() if k != 'mean'}
    return val, {}

  if evaluate_start and step == 0:
    val, detail = evaluate_now()  # no train loss: no step was taken
    history.append({'step': 0, 'val_loss': val, 'elapsed_s': 0.0, **detail})
  model.train()
  while step < cfg.steps:
    for group in opt.param_groups:
      group['lr'] = cosine_lr(step, cfg, elapsed_before + time.perf_counter() - start)
    with autocast:
      loss = batch_loss(net, step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    step += 1
    examples += examples_per_step * env.world
    now = time.perf_counter()
    timed_out = cfg.time_limit_s is not None and elapsed_before + now - start > cfg.time_limit_s
    evaluating = step % cfg.eval_every == 0 or step == cfg.steps or timed_out
    # Reading the loss waits for the device: on a GPU, every step would stall its queue.
    if evaluating or step % LOSS_READ_EVERY == 0 or loss_value is None:
      loss_value = loss.item()
      bar.set_postfix(loss=f'{loss_value:.3f}', ex_s=f'{examples / (now - tick):.0f}')
    bar.update(1)
    if evaluating:
      val, detail = evaluate_now()
      history.append({'step': step, 'train_loss': env.mean(loss_value), 'val_loss': val,
                      'elapsed_s': elapsed_before + now - start, **detail})
      if env.main:
        bar.write(f'step {step}: train {history[-1]["train_loss"]:.4f} val {val:.4f}')
    if env.main and (step % cfg.checkpoint_every == 0 or step == cfg.steps or timed_out):
      torch.save({'model': model.state_dict(), 'optimizer': opt.state_dict(), 'step': step,
                  'history': json.dumps(history),
                  'elapsed_s': elapsed_before + time.perf_counter() - start}, last)
    if timed_out:
      break
  bar.close()
  summary = run_summary(run_info, model, step=step, history=history,
                        wall_time_s=elapsed_before + time.perf_counter() - start)
  if env.main:
    save(out / 'model.pt', summary)
    (out / 'summary.json').write_text(json.dumps(summary, indent=1, default=str))
  env.close()
  return summary


def run_summary(run_info: dict, model: nn.Module, *, step: int, history: list[dict],
                wall_time_s: float) -> dict:
  """What a run's summary.json (and a checkpoint's card) says: `run_info` from run.json plus
  the state at `step`."""
  return dict(run_info, steps=step, num_parameters=sum(p.numel() for p in model.parameters()),
              wall_time_s=round(wall_time_s, 1),
              final_val_loss=history[-1]['val_loss'] if history else None, history=history)


def jsonable(d):
  return json.loads(json.dumps(d, default=str))
