"""In-context pretraining on streamed synthetic studies: one CPU, one GPU, or many via torchrun.

    vizier-omnipred pretrain --steps 20000 --out runs/icl            # one process
    torchrun --nproc_per_node=8 -m vizier_omnipred.cli pretrain ...   # DistributedDataParallel

Every batch is a set of episodes, as PFNs train: a fresh study from the prior
(`corpus.IN_CONTEXT_CORPUS`: GP draws, shifted/rotated BBOB functions and their mixtures, mixed
parameter types), some of its trials given with y (the context), the rest to predict (the
queries). One context size is drawn per batch, from 2 to `max_context`, so one pass trains every
size; the number of studies per batch shrinks as the context grows, keeping the trials per
batch (and the step time) about constant. y is normalised by the context alone
(`YScaler` onto [2, 3]), exactly as the regressor does at prediction time.

Each rank builds its batch from (seed, step, rank), so the stream is deterministic and
resuming needs no data state; a worker process builds the next batches while this one trains.
"""

from __future__ import annotations

import functools
import os
import pathlib

import attrs
import numpy as np
import torch

from vizier_omnipred import checkpoints
from vizier_omnipred.model import MAX_SLOTS, ModelConfig, OmniPredModel, on_device
from vizier_omnipred.pretraining import growth
from vizier_omnipred.pretraining.conditional_prior import ConditionalStudy
from vizier_omnipred.pretraining.corpus import (
    EVAL_SEED_OFFSET, IN_CONTEXT_CORPUS, CorpusConfig, SyntheticStudy)
from vizier_omnipred.pretraining import user_studies
from vizier_omnipred.pretraining.family_prior import FamilyConfig, StudyFamily
from vizier_omnipred.pretraining.multi_output_prior import MultiOutputStudy
from vizier_omnipred import episodes
from vizier_omnipred.serialization import Featurizer, StudyInputs
from vizier_omnipred.training import DistEnv, Prefetcher, train_loop

# At most this share of episodes comes from a user's database: a few hundred studies would
# otherwise be memorised, and the synthetic prior is what teaches regression in context.
MAX_DATABASE_FRACTION = 0.5


@attrs.frozen
class TrainConfig:
  """Every knob of a pretraining run."""

  model: ModelConfig = attrs.field(factory=ModelConfig, kw_only=True)
  corpus: CorpusConfig = attrs.field(default=IN_CONTEXT_CORPUS, kw_only=True)
  steps: int = attrs.field(default=20_000, kw_only=True)
  trials_per_batch: int = attrs.field(default=1024, kw_only=True)  # per rank, context + queries
  queries_per_study: int = attrs.field(default=16, kw_only=True)
  min_context: int = attrs.field(default=2, kw_only=True)  # YScaler needs two context y
  max_context: int = attrs.field(default=100, kw_only=True)
  learning_rate: float = attrs.field(default=1e-3, kw_only=True)
  min_learning_rate_ratio: float = attrs.field(default=0.05, kw_only=True)
  warmup_steps: int = attrs.field(default=300, kw_only=True)
  weight_decay: float = attrs.field(default=0.01, kw_only=True)
  grad_clip: float = attrs.field(default=1.0, kw_only=True)
  bf16: bool = attrs.field(default=False, kw_only=True)
  eval_every: int = attrs.field(default=500, kw_only=True)
  eval_studies: int = attrs.field(default=32, kw_only=True)  # per context size
  eval_context_sizes: tuple[int, ...] = attrs.field(default=(2, 5, 10, 30, 100), kw_only=True)
  checkpoint_every: int = attrs.field(default=500, kw_only=True)
  prefetch: int = attrs.field(default=4, kw_only=True)  # batches built ahead; 0: in-process
  data_workers: int = attrs.field(default=1, kw_only=True)  # processes building batches
  time_limit_s: float | None = attrs.field(default=None, kw_only=True)
  seed: int = attrs.field(default=0, kw_only=True)
  # A checkpoint whose weights start a new run (e.g. the shipped one, to train it further on
  # a changed prior, or deepened: `growth`); fresh optimizer and schedule. Ignored when the
  # run directory resumes.
  init_from: str | None = attrs.field(default=None, kw_only=True)
  # Slots in training: 0 binds a study's parameters to the slots of their name ranks, 0..d-1
  # (so slots from 5 on are trained only in studies of 6+ parameters, where most GP draws
  # cannot be learnt from the context); K > 0 binds them to a random subset of slots 0..K-1,
  # drawn per study and step, so every slot also learns in small studies. The shipped model
  # fails when a parameter that matters sits on slot 5-7 of an 8-parameter study (error
  # 0.25, the median's, against 0.05 on slots 0-4); a 35-minute continuation with K = 12 did
  # not fix that and cost elsewhere (README, "parameters that do nothing"): 0 by default.
  random_slots: int = attrs.field(default=0, kw_only=True)
  # Only the weights whose names start with one of these learn; the rest stay as loaded (e.g.
  # ('prior_gate.',): a gate switched on in the shipped weights learns when to listen, while
  # what the network reads from a prior study it listens to stays as shipped). (): all learn.
  train_only: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=tuple)
  # Held-out conditional studies at these context sizes, reported beside the flat ones.
  eval_conditional_sizes: tuple[int, ...] = attrs.field(default=(10, 30), kw_only=True)
  # Held-out studies whose trials carry other metrics (several objectives), at these sizes.
  eval_multi_output_sizes: tuple[int, ...] = attrs.field(default=(10, 30), kw_only=True)
  # Share of episodes that are study families (`family_prior`): the current study's context
  # beside 0-3 prior studies' trials. Needs `model.prior_studies`. 0: none (the stream of a
  # run without families is unchanged).
  family_fraction: float = attrs.field(default=0.0, kw_only=True)
  family: FamilyConfig = attrs.field(factory=FamilyConfig, kw_only=True)
  # Held-out families at these current-study sizes, each with 2 prior studies of
  # `eval_prior_trials` trials that are related, unrelated, or left out (same current trials).
  eval_family_sizes: tuple[int, ...] = attrs.field(default=(2, 5, 10, 30), kw_only=True)
  eval_prior_trials: int = attrs.field(default=50, kw_only=True)
  # A Vizier database whose finished studies join the synthetic ones (`user_studies`): this
  # share of episodes, never all of them; `database_holdout` of its studies are only
  # evaluated, at `eval_database_sizes` context trials.
  database_url: str | None = attrs.field(default=None, kw_only=True)
  database_fraction: float = attrs.field(default=0.2, kw_only=True)
  database_holdout: float = attrs.field(default=0.2, kw_only=True)
  eval_database_sizes: tuple[int, ...] = attrs.field(default=(5, 10, 30), kw_only=True)

  def __attrs_post_init__(self):
    if self.family_fraction and not self.model.prior_studies:
      raise ValueError('family_fraction > 0 needs a model that reads prior studies '
                       '(ModelConfig(prior_studies=True), --prior-studies).')
    if self.database_url is not None and not 0 < self.database_fraction <= MAX_DATABASE_FRACTION:
      raise ValueError(f'database_fraction must be in (0, {MAX_DATABASE_FRACTION}]: the '
                       'database\'s studies join the synthetic prior, never replace it; got '
                       f'{self.database_fraction}.')


Study = SyntheticStudy | ConditionalStudy | MultiOutputStudy


def prior_study(seed: int, config: CorpusConfig, *, split: str = 'train') -> Study:
  """The study of `seed` in the prior: over a conditional space with probability
  `config.conditional_fraction`, with other metrics as inputs with probability
  `config.multi_output_fraction`, else a flat `SyntheticStudy`. (One uniform draw decides, so a
  seed's conditional study stays the same whatever the multi-output share is.)"""
  u = np.random.default_rng([seed, 5]).random()
  if u < config.conditional_fraction:
    return ConditionalStudy(seed, config, split=split)
  if u < config.conditional_fraction + config.multi_output_fraction:
    return MultiOutputStudy(seed, config, split=split)
  return SyntheticStudy(seed, config, split=split)


def episode(study: Study, num_context: int, num_queries: int, rng: np.random.Generator,
            model_config: ModelConfig) -> tuple[StudyInputs, np.ndarray]:
  """One study's context + queries -> (inputs, query targets as y slot ids [num_queries, T])."""
  rows, y = study.draw(num_context + num_queries, rng)
  featurizer = Featurizer(study.problem, config=model_config.featurizer,
                          metric_inputs=study.metric_inputs)
  return episodes.episode(featurizer.featurize(rows), featurizer.metadata(), y, num_context,
                           model_config.y_codec)


def family_episode(family: StudyFamily, num_context: int, num_queries: int,
                   rng: np.random.Generator, model_config: ModelConfig, *,
                   prior_sizes=None, priors_from: StudyFamily | None = None,
                   with_priors: bool = True) -> tuple[StudyInputs, np.ndarray]:
  """A family's current study (context + queries) with its prior studies' trials first in
  the context. `priors_from`: take the prior studies from that family instead (its current
  study must be the same: the held-out table swaps related for unrelated priors on the same
  current trials); `with_priors=False`: the current study alone, drawn the same way."""
  problem, rows, y, priors = family_draw(family, num_context + num_queries, rng,
                                         prior_sizes=prior_sizes, priors_from=priors_from)
  return family_inputs(problem, rows, y, priors if with_priors else [], num_context,
                       model_config)


def family_inputs(problem, rows, y, priors, num_context: int, model_config: ModelConfig
                  ) -> tuple[StudyInputs, np.ndarray]:
  """A drawn family (`family_draw`) as an episode: the prior studies' trials first in the
  context, then the current study's `num_context`, then its queries."""
  featurizer = Featurizer(problem, config=model_config.featurizer, partial_rows=True)
  items = featurizer.featurize([r for p, _ in priors for r in p] + rows)
  return episodes.episode(items, featurizer.metadata(), y, num_context, model_config.y_codec,
                           prior_y=[v for _, v in priors])


def family_draw(family: StudyFamily, num_trials: int, rng: np.random.Generator, *,
                prior_sizes=None, priors_from: StudyFamily | None = None):
  """-> (problem, the current study's rows and y, [(rows, y)] of its prior studies): a
  family's draw as `family_episode` reads it (`priors_from`: see there)."""
  studies = family.draw(num_trials, rng, prior_sizes=prior_sizes)
  (rows, y), priors = studies[0], studies[1:]
  problem = family.problem
  if priors_from is not None:
    priors = priors_from.draw(2, rng, prior_sizes=prior_sizes)[1:]
    problem = priors_from.problem
  return problem, rows, y, priors


def context_size(rng: np.random.Generator, lo: int, hi: int) -> int:
  """Half the batches log-uniform (small contexts are where the prior matters most), half
  uniform (the designer's 20-100 trials)."""
  if rng.random() < 0.5:
    return int(np.clip(round(np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))), lo, hi))
  return int(rng.integers(lo, hi + 1))


def make_batch(cfg: TrainConfig, step: int, rank: int) -> tuple[StudyInputs, np.ndarray]:
  """The batch of (step, rank): deterministic, so a resumed run sees the same stream."""
  rng = np.random.default_rng([cfg.seed, step, rank])
  n_ctx = context_size(rng, cfg.min_context, cfg.max_context)
  parts, targets = [], []
  own = user_studies.split(cfg.database_url, cfg.database_holdout)[0] if cfg.database_url else ()
  if not cfg.family_fraction and not own:
    n_studies = max(1, cfg.trials_per_batch // (n_ctx + cfg.queries_per_study))
    for seed in rng.integers(0, EVAL_SEED_OFFSET, n_studies):
      inputs, ids = episode(prior_study(int(seed), cfg.corpus), n_ctx, cfg.queries_per_study,
                            rng, cfg.model)
      parts.append(inputs)
      targets.append(ids)
  else:  # episodes until the batch holds its trials: a family's prior trials count too
    trials = 0
    while trials < cfg.trials_per_batch or not parts:
      seed = int(rng.integers(0, EVAL_SEED_OFFSET))
      if own and rng.random() < cfg.database_fraction:
        inputs, ids = user_studies.episode(own[seed % len(own)], n_ctx, cfg.queries_per_study,
                                           rng, cfg.model)
      elif rng.random() < cfg.family_fraction:
        inputs, ids = family_episode(StudyFamily(seed, _flat(cfg.corpus), cfg.family), n_ctx,
                                     cfg.queries_per_study, rng, cfg.model)
      else:
        inputs, ids = episode(prior_study(seed, cfg.corpus), n_ctx, cfg.queries_per_study,
                              rng, cfg.model)
      parts.append(inputs)
      targets.append(ids)
      trials += int(inputs.present.sum())
  # Compact: a worker process pickles this batch to the trainer (6x fewer bytes).
  return StudyInputs.stack(parts).compact(), np.concatenate(targets)


def _flat(corpus: CorpusConfig) -> CorpusConfig:
  """The corpus without conditional or multi-output studies: a family's latent study."""
  return attrs.evolve(corpus, conditional_fraction=0.0, multi_output_fraction=0.0)


def random_slot_tables(num_studies: int, num_slots: int, rng: np.random.Generator
                       ) -> torch.Tensor:
  """[num_studies, MAX_SLOTS] slot tables (`OmniPredModel.slots`): rank r takes slot table[r];
  the first `num_slots` ranks a random permutation of slots 0..num_slots-1 per study, the rest
  their own slot."""
  if not 1 <= num_slots <= MAX_SLOTS:
    raise ValueError(f'random_slots must be in 1..{MAX_SLOTS}, got {num_slots}.')
  table = np.tile(np.arange(MAX_SLOTS), (num_studies, 1))
  table[:, :num_slots] = rng.permuted(np.tile(np.arange(num_slots), (num_studies, 1)), axis=1)
  return torch.as_tensor(table)


def evaluate(model: OmniPredModel, cfg: TrainConfig, device: torch.device) -> dict:
  """Mean token loss on held-out studies (held-out BBOB functions, disjoint seeds), per
  context size and overall; and on held-out conditional-space studies at
  `eval_conditional_sizes`, and on held-out multi-output studies at `eval_multi_output_sizes`.
  Deterministic: the same episodes at every evaluation. The flat studies are the same whatever
  `conditional_fraction` and `multi_output_fraction` are, so runs stay comparable."""
  model.eval()
  with torch.no_grad():
    by_size = {size: _eval_loss(model, cfg, device, size, SyntheticStudy)
               for size in cfg.eval_context_sizes}
    conditional = {size: _eval_loss(model, cfg, device, size, ConditionalStudy)
                   for size in cfg.eval_conditional_sizes}
    multi = {size: _eval_loss(model, cfg, device, size, MultiOutputStudy)
             for size in cfg.eval_multi_output_sizes}
    families = ({relation: {size: _eval_family_loss(model, cfg, device, size, relation)
                            for size in cfg.eval_family_sizes}
                 for relation in ('related', 'unrelated', 'none')}
                if model.model_config.prior_studies else {})
    held_out = user_studies.split(cfg.database_url, cfg.database_holdout)[1] if (
        cfg.database_url) else ()
    database = {size: _eval_database_loss(model, cfg, device, size, held_out)
                for size in cfg.eval_database_sizes} if held_out else {}
  model.train()
  return {'mean': float(np.mean(list(by_size.values()))), 'by_context': by_size,
          'conditional_by_context': conditional, 'multi_output_by_context': multi,
          'family_by_context': families, 'database_by_context': database}


# Held-out studies scored together in one forward pass.
_EVAL_BATCH = 8


def _mean_loss(model: OmniPredModel, device: torch.device, episodes) -> float:
  """Mean token loss over (inputs, target ids) episodes, `_EVAL_BATCH` studies a pass."""
  total, count, batch = 0.0, 0, []
  for episode_ in list(episodes) + [None]:
    if episode_ is not None:
      batch.append(episode_)
    if batch and (episode_ is None or len(batch) == _EVAL_BATCH):
      ids = np.concatenate([t for _, t in batch])
      loss = model.loss(model.to_tensors(StudyInputs.stack([i for i, _ in batch])),
                        torch.as_tensor(ids, device=device))
      total += float(loss) * len(ids)
      count += len(ids)
      batch = []
  return total / count


def _eval_database_loss(model: OmniPredModel, cfg: TrainConfig, device: torch.device,
                        size: int, studies) -> float:
  """The held-out user studies, one fixed context/query split of each."""
  return _mean_loss(model, device, (
      user_studies.episode(study, size, cfg.queries_per_study,
                           np.random.default_rng([EVAL_SEED_OFFSET, cfg.seed, size, i]),
                           cfg.model) for i, study in enumerate(studies)))


def _eval_loss(model: OmniPredModel, cfg: TrainConfig, device: torch.device, size: int,
               kind: type) -> float:
  rng = np.random.default_rng([EVAL_SEED_OFFSET, cfg.seed, size])
  return _mean_loss(model, device, (
      episode(kind(EVAL_SEED_OFFSET + cfg.seed + i, cfg.corpus, split='eval'), size,
              cfg.queries_per_study, rng, cfg.model) for i in range(cfg.eval_studies)))


def _eval_family_loss(model: OmniPredModel, cfg: TrainConfig, device: torch.device, size: int,
                      relation: str) -> float:
  """Held-out families with 2 prior studies: 'related' reads them, 'unrelated' reads 2
  unrelated studies instead, 'none' reads the current study alone; the current study's
  trials and targets are the same in all three."""
  def one(i: int):
    problem, rows, y, priors = held_out_family(cfg, size, i, relation)
    return family_inputs(problem, rows, y, priors, size, cfg.model)
  return _mean_loss(model, device, (one(i) for i in range(cfg.eval_studies)))


def held_out_family(cfg: TrainConfig, size: int, i: int, relation: str):
  """Held-out family `i` of the card's table at `size` current-study trials, drawn as
  `family_draw` (the current study `size` + `queries_per_study` trials): its 2 prior studies
  ('related'), 2 unrelated ones instead ('unrelated'), or none ('none'); the same current
  trials in all three."""
  seed = EVAL_SEED_OFFSET + cfg.seed + i
  rng = np.random.default_rng([EVAL_SEED_OFFSET, cfg.seed, size, i])
  family = StudyFamily(seed, _flat(cfg.corpus), cfg.family, split='eval', relation='related',
                       num_priors=2)
  other = (StudyFamily(seed, _flat(cfg.corpus), cfg.family, split='eval',
                       relation='unrelated', num_priors=2) if relation == 'unrelated' else None)
  problem, rows, y, priors = family_draw(family, size + cfg.queries_per_study, rng,
                                         prior_sizes=[cfg.eval_prior_trials] * 2,
                                         priors_from=other)
  return problem, rows, y, [] if relation == 'none' else priors


def train(cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = True,
          progress: bool = True) -> dict:
  """Runs (or resumes) pretraining; writes `last.pt` (resumable) and `model.pt` (shippable)."""
  env = DistEnv()
  torch.manual_seed(cfg.seed)
  model = OmniPredModel(cfg.model).to(env.device)
  if cfg.init_from and not (resume and (pathlib.Path(out_dir) / 'last.pt').exists()):
    start, _ = checkpoints.load(cfg.init_from)
    if not growth.can_grow(start.model_config, cfg.model):
      raise ValueError(f'--init-from {cfg.init_from}: its model config {start.model_config}'
                       f' differs from this run\'s {cfg.model}; pass matching sizes (only'
                       ' --encoder-layers may be larger and --slot-binding on: the new parts'
                       ' start silent).')
    growth.load_grown(model, start)  # equal configs: a plain copy of the weights
  if cfg.train_only:
    if not any(n.startswith(cfg.train_only) for n, _ in model.named_parameters()):
      raise ValueError(f'train_only {list(cfg.train_only)}: no weight of this model starts so.')
    for n, p in model.named_parameters():
      p.requires_grad_(n.startswith(cfg.train_only))
  build = functools.partial(make_batch, cfg, rank=env.rank)
  with Prefetcher(build, depth=cfg.prefetch, workers=cfg.data_workers) as batches:

    def batch_loss(net, step):
      inputs, ids = batches.get(step)
      # Through net's forward (not model.loss): DDP syncs gradients only there.
      target = on_device(ids, env.device)
      tensors = model.to_tensors(inputs)
      if cfg.random_slots:
        tensors['slot_permutation'] = random_slot_tables(
            len(inputs.present), cfg.random_slots,
            np.random.default_rng([cfg.seed, step, env.rank, 1])).to(env.device)
      logits = net(tensors, target)
      return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                               (target + model.slot_offsets).reshape(-1))

    return train_loop(
        model, cfg, out_dir, env=env, batch_loss=batch_loss,
        evaluate=lambda: evaluate(model, cfg, env.device),
        save=lambda path, summary: checkpoints.save(
            path, model, card=checkpoints.card_from_summary('omnipred-icl', summary)),
        examples_per_step=cfg.trials_per_batch, name='pretrain', resume=resume,
        progress=progress, evaluate_start=cfg.init_from is not None)
