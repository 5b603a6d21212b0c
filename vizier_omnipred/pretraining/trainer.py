"""Multi-task pretraining on streamed synthetic studies: one CPU, one GPU, or many via torchrun.

    vizier-omnipred pretrain --steps 20000 --out runs/small          # one process
    torchrun --nproc_per_node=8 -m vizier_omnipred.cli pretrain ...   # DistributedDataParallel

Each rank draws its own studies from (seed, step, rank), so the stream is deterministic and
resuming needs no data state: a checkpoint holds the model, the optimizer and the step.
y is mapped onto [2, 3] with `YScaler` as in `OmniPredRegressor.fine_tune`, but from each
study's fixed reference range, so a recurring study has the same targets on every visit.
"""

from __future__ import annotations

import functools
import os

import attrs
import numpy as np
import torch

from vizier_omnipred import checkpoints
from vizier_omnipred.model import ModelConfig, OmniPredModel
from vizier_omnipred.pretraining.corpus import CorpusConfig, SyntheticStudy, EVAL_SEED_OFFSET
from vizier_omnipred.regressor import YScaler
from vizier_omnipred.serialization import Featurizer, ModelInputs
from vizier_omnipred.training import DistEnv, train_loop


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
  env = DistEnv()
  torch.manual_seed(cfg.seed)
  model = OmniPredModel(cfg.model).to(env.device)
  pool = cfg.corpus.pool_size or EVAL_SEED_OFFSET

  def batch_loss(net, step):
    rng = np.random.default_rng([cfg.seed, step, env.rank])
    studies = [_train_study(int(s), cfg.corpus) for s in rng.integers(0, pool, cfg.studies_per_batch)]
    inputs, ids = study_batch(studies, cfg.trials_per_study, rng, cfg.model)
    # Through net's forward (not model.loss): DDP syncs gradients only there.
    target = torch.as_tensor(ids, device=env.device)
    logits = net(model.to_tensors(inputs), target)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                             (target + model.slot_offsets).reshape(-1))

  return train_loop(
      model, cfg, out_dir, env=env, batch_loss=batch_loss,
      evaluate=lambda: evaluate(model, cfg, env.device),
      save=lambda path, summary: checkpoints.save(
          path, model, card=checkpoints.card_from_summary('omnipred-small', summary)),
      examples_per_step=cfg.studies_per_batch * cfg.trials_per_study, name='pretrain',
      resume=resume, progress=progress)
