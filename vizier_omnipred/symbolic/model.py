"""The end-to-end symbolic-regression transformer: a set of points in, a formula out.

Each point (x0..x{max_dim-1}, y) becomes ONE vector: every float is written as number tokens
(sign, exponent, mantissa digits; `NumberCodec`), each slot is embedded, the slot embeddings
of all the point's floats (plus a symlog scalar per float, and zeros with an "absent" flag for
inputs beyond the study's D) are concatenated and mixed by a 2-layer ReLU FFN. The encoder has
no positional embeddings, so the points are read as a set; a deeper causal decoder with
cross-attention writes the prefix formula (`vocabulary`). Sampling masks every token the
prefix grammar forbids, so each sample parses.

Shapes: B point sets, N points, F = max_dim + 1 floats per point, L number slots, T tokens.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vizier_omnipred.decoding import CachedDecoder
from vizier_omnipred.model import DecoderBlock, EncoderBlock, init_weights
from vizier_omnipred.numbers import NumberCodec
from vizier_omnipred.symbolic.expressions import Formula
from vizier_omnipred.symbolic.generator import GeneratorConfig, Sample
from vizier_omnipred.symbolic.vocabulary import BOS, EOS, PAD, Grammar, Vocabulary


@attrs.frozen
class SymbolicConfig:
  """Every size of the model and of the data it was trained on. Stored in each checkpoint."""

  d_model: int = attrs.field(default=128, kw_only=True)
  num_heads: int = attrs.field(default=4, kw_only=True)
  encoder_layers: int = attrs.field(default=2, kw_only=True)
  decoder_layers: int = attrs.field(default=4, kw_only=True)
  d_ff: int = attrs.field(default=256, kw_only=True)
  dropout: float = attrs.field(default=0.0, kw_only=True)
  slot_dim: int = attrs.field(default=16, kw_only=True)
  point_digits: int = attrs.field(default=3, kw_only=True)
  point_min_exponent: int = attrs.field(default=-8, kw_only=True)
  point_max_exponent: int = attrs.field(default=8, kw_only=True)
  generator: GeneratorConfig = attrs.field(factory=GeneratorConfig, kw_only=True)

  def __attrs_post_init__(self):
    if self.d_model % self.num_heads:
      raise ValueError(f'SymbolicConfig: d_model ({self.d_model}) must be divisible by'
                       f' num_heads ({self.num_heads}).')

  @property
  def max_dim(self) -> int:
    return self.generator.max_dim

  @property
  def point_codec(self) -> NumberCodec:
    return NumberCodec(digits=self.point_digits, min_exponent=self.point_min_exponent,
                       max_exponent=self.point_max_exponent)

  @property
  def vocabulary(self) -> Vocabulary:
    return self.generator.vocabulary

  def to_dict(self) -> dict:
    return attrs.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> 'SymbolicConfig':
    d = dict(d)
    d['generator'] = GeneratorConfig(**d.get('generator', {}))
    return cls(**d)


def point_arrays(x: np.ndarray, y: np.ndarray, cfg: SymbolicConfig) -> dict[str, np.ndarray]:
  """One point set -> numpy features: ids [N, F, L], scalars [N, F], present [N, F]."""
  x = np.asarray(x, dtype=np.float64)
  n, d = x.shape
  if d > cfg.max_dim:
    raise ValueError(f'The model reads at most {cfg.max_dim} inputs; got {d}.')
  values = np.zeros((n, cfg.max_dim + 1))
  values[:, :d] = x
  values[:, -1] = y
  present = np.zeros((n, cfg.max_dim + 1), dtype=bool)
  present[:, :d] = True
  present[:, -1] = True
  return {'ids': cfg.point_codec.encode_many(values), 'present': present,
          'scalars': (np.sign(values) * np.log1p(np.abs(values))).astype(np.float32)}


def collate_points(sets: Sequence[dict[str, np.ndarray]], device) -> dict[str, torch.Tensor]:
  """Pads point sets to the longest; adds `mask` [B, N] (True = a real point)."""
  n = max(s['ids'].shape[0] for s in sets)
  b = len(sets)
  f, l = sets[0]['ids'].shape[1:]
  ids = np.zeros((b, n, f, l), dtype=np.int64)
  present = np.zeros((b, n, f), dtype=bool)
  scalars = np.zeros((b, n, f), dtype=np.float32)
  mask = np.zeros((b, n), dtype=bool)
  for i, s in enumerate(sets):
    k = s['ids'].shape[0]
    ids[i, :k], present[i, :k], scalars[i, :k], mask[i, :k] = s['ids'], s['present'], s['scalars'], True
  as_t = lambda a: torch.as_tensor(a, device=device)
  return {'ids': as_t(ids), 'present': as_t(present), 'scalars': as_t(scalars), 'mask': as_t(mask)}


def collate_targets(formulas: Sequence[Formula], vocab: Vocabulary, device) -> torch.Tensor:
  """[B, T] = BOS, formula ids, EOS, PAD..."""
  seqs = [[BOS] + vocab.encode(f) + [EOS] for f in formulas]
  t = max(map(len, seqs))
  out = np.full((len(seqs), t), PAD, dtype=np.int64)
  for i, s in enumerate(seqs):
    out[i, :len(s)] = s
  return torch.as_tensor(out, device=device)


class PointEmbedding(nn.Module):
  """One vector per point: number-token slot embeddings of all its floats -> 2-layer ReLU FFN."""

  def __init__(self, cfg: SymbolicConfig):
    super().__init__()
    codec = cfg.point_codec
    self.slots = nn.ModuleList(nn.Embedding(size, cfg.slot_dim) for size in codec.slot_sizes)
    floats = cfg.max_dim + 1
    width = floats * (cfg.slot_dim * codec.length + 2)  # + symlog scalar + present flag
    self.ffn = nn.Sequential(nn.Linear(width, cfg.d_model), nn.ReLU(),
                             nn.Linear(cfg.d_model, cfg.d_model))

  def forward(self, points: dict[str, torch.Tensor]) -> torch.Tensor:
    ids, present = points['ids'], points['present']
    pf = present.unsqueeze(-1).float()
    slots = [emb(ids[..., i]) for i, emb in enumerate(self.slots)]  # each [B, N, F, S]
    per_float = torch.cat(slots + [points['scalars'].unsqueeze(-1)], dim=-1) * pf
    per_float = torch.cat([per_float, pf], dim=-1)  # [B, N, F, L*S + 2]
    return self.ffn(per_float.flatten(-2))


class SymbolicModel(nn.Module):
  """Points -> formula. `loss` is teacher-forced; `sample` draws grammar-valid formulas."""

  checkpoint_format = 'vizier-omnipred-symbolic/1'

  def __init__(self, cfg: SymbolicConfig):
    super().__init__()
    self.model_config = cfg
    d = cfg.d_model
    self.vocab = cfg.vocabulary
    self.points = PointEmbedding(cfg)
    self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.encoder_layers))
    self.ln_memory = nn.LayerNorm(d)
    self.tokens = nn.Embedding(len(self.vocab), d)
    self.positions = nn.Embedding(cfg.generator.max_len + 2, d)
    self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.decoder_layers))
    self.ln_out = nn.LayerNorm(d)
    self.head = nn.Linear(d, len(self.vocab))
    self.apply(init_weights)

  @property
  def device(self) -> torch.device:
    return self.head.weight.device

  def encode(self, points: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> memory [B, N, D], attention mask [B, 1, 1, N]."""
    x = self.points(points)
    mask = points['mask'][:, None, None, :]
    for block in self.encoder:
      x = block(x, mask)
    return self.ln_memory(x), mask

  def decode(self, prev: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """prev [B, T] ids (BOS first) -> logits [B, T, V]."""
    y = self.tokens(prev) + self.positions.weight[:prev.shape[1]]
    for block in self.decoder:
      y = block(y, memory, mask)
    return self.head(self.ln_out(y))

  def forward(self, points: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    memory, mask = self.encode(points)
    return self.decode(targets[:, :-1], memory, mask)

  def collate(self, samples: Sequence[Sample]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Generated samples -> (points, targets) on the model's device."""
    cfg = self.model_config
    points = collate_points([point_arrays(s.x, s.y, cfg) for s in samples], self.device)
    return points, collate_targets([s.formula for s in samples], self.vocab, self.device)

  @staticmethod
  def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the formula tokens and EOS (PAD ignored)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                           targets[:, 1:].reshape(-1), ignore_index=PAD)

  def batch_loss(self, samples: Sequence[Sample]) -> torch.Tensor:
    points, targets = self.collate(samples)
    return self.token_loss(self(points, targets), targets)

  @torch.no_grad()
  def sample(self, x: np.ndarray, y: np.ndarray, num_samples: int, *, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> list[Formula]:
    """`num_samples` grammar-valid formulas for one point set (temperature 0: greedy, one)."""
    if num_samples < 1:
      raise ValueError(f'num_samples must be >= 1, got {num_samples}.')
    if temperature < 0:
      raise ValueError(f'temperature must be >= 0, got {temperature}.')
    cfg = self.model_config
    x = np.asarray(x, dtype=np.float64)
    s = 1 if temperature == 0 else num_samples
    points = collate_points([point_arrays(x, y, cfg)], self.device)
    memory, mask = self.encode(points)
    max_len = cfg.generator.max_len + 1  # + EOS
    decoder = CachedDecoder(self.decoder, memory, mask, max_len)
    rows = torch.zeros(s, dtype=torch.long, device=self.device)  # every sample reads memory 0
    grammar = Grammar(self.vocab, torch.full((s,), x.shape[1], device=self.device),
                      cfg.generator.max_len)
    seq = torch.full((s, 1), BOS, dtype=torch.long, device=self.device)
    for t in range(max_len):
      y = decoder.step(self.tokens(seq[:, -1]) + self.positions.weight[t], t, rows)
      logits = self.head(self.ln_out(y)).float().masked_fill(~grammar.mask(), float('-inf'))
      if temperature == 0:
        ids = logits.argmax(-1)
      else:
        ids = torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]
      grammar.step(ids)
      seq = torch.cat([seq, ids[:, None]], dim=1)
      if grammar.finished:
        break
    return [self.vocab.decode(row[1:].tolist()) for row in seq]


def load_pretrained(path=None, *, device=None) -> tuple['SymbolicModel', dict]:
  """-> (symbolic-regression model in eval mode, card). No path: the shipped checkpoint."""
  from vizier_omnipred import checkpoints  # pylint: disable=g-import-not-at-top
  return checkpoints.load_file(
      path, checkpoints.SHIPPED_SYMBOLIC, SymbolicModel.checkpoint_format,
      lambda c: SymbolicModel(SymbolicConfig.from_dict(c)), device,
      'Train one with `vizier-omnipred explain-pretrain` and pass its path.')
