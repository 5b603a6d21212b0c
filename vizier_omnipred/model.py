"""The in-context surrogate: an encoder-decoder that reads a whole study and writes y tokens.

Encoder: each parameter item (see `serialization`) is embedded as one vector; a trial is its
items pooled (a set: no order) plus, for a context trial, its y; transformer blocks with no
positional embeddings run over [metadata items, trials], each query seeing only the metadata,
the context and itself. Decoder: a causal transformer over the query's y tokens (sign,
exponent, mantissa digits) with cross-attention to the query's encoder state. All projections
are named `nn.Linear` modules (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `fc_in`, `fc_out`, and the
number-embedding FFNs `number_ffn.0/2`) so that peft's LoRA can target them by name. The
blocks (`EncoderBlock`, `DecoderBlock`) are shared with the symbolic-regression model.

Shapes: B studies, N trials, P items, M metadata items, Q queries in all,
T = y_codec.length decoder positions, D = d_model, H heads.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vizier_omnipred.numbers import NumberCodec
from vizier_omnipred.prior_gate import PriorGate, agreement_features, selected_positions
from vizier_omnipred.serialization import NUM_KINDS, STANDARD_CLIP, FeaturizerConfig, StudyInputs

# peft matches these as suffixes of module names. The number-embedding FFN is included: without
# it LoRA cannot adapt how values are read (designer surrogate rank correlation 0.06-0.10 ->
# 0.14-0.19 on shifted Sphere 4-D at 15-30 trials).
LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc_in', 'fc_out',
                'number_ffn.0', 'number_ffn.2')


# Field metadata: the field acts only when prior studies are given (a signature of runs that
# give none leaves it out: `benchmarks.designer_zoo.signature`, `checkpoints.weights_digest`).
PRIORS_ONLY = {'priors_only': True}


def acts_only_with_priors(name: str) -> bool:
  """A `ModelConfig` field (or the module of the same name, with its weights) that changes no
  prediction made without prior studies."""
  field = getattr(attrs.fields(ModelConfig), name, None)
  return field is not None and bool(field.metadata.get('priors_only'))


@attrs.frozen
class ModelConfig:
  """Every size of the model, and of the features it reads. Stored in each checkpoint."""

  d_model: int = attrs.field(default=128, kw_only=True)
  num_heads: int = attrs.field(default=4, kw_only=True)
  encoder_layers: int = attrs.field(default=4, kw_only=True)
  decoder_layers: int = attrs.field(default=2, kw_only=True)
  # A trial's numeric values also enter its token bound to orthogonal slot codes (one slot
  # per parameter, by its name's rank among the study's names), summed and projected: the
  # pooled item embeddings alone lose the coordinates from 4-D on (benchmarks/trial_probe.py).
  slot_binding: bool = attrs.field(default=False, kw_only=True)
  # The context may also hold trials of the user's other (prior) studies: each such trial's
  # token gets a code computed from its own study's tokens (a set function, so neither the
  # order of prior studies nor of their trials can matter), plus a prior-trial vector.
  prior_studies: bool = attrs.field(default=False, kw_only=True)
  # With prior studies: each one's trials weighed in attention as a whole, by a learned gate on
  # how well it predicts the current study's trials (`prior_gate`).
  prior_gate: bool = attrs.field(default=False, kw_only=True, metadata=PRIORS_ONLY)
  # With prior studies: a parameter's slot is its name's rank among the current study's names
  # (and its own trial's) only, so prior studies over other parameters do not move the current
  # study's slots. Otherwise every name in the context counts, and an unrelated prior study's
  # names shift the study's own slot codes: in the transfer model that was half of what
  # unrelated prior studies cost at 30 trials (docs/design.md, "Unrelated prior studies: slots
  # ranked by the study's own names").
  current_slots: bool = attrs.field(default=False, kw_only=True, metadata=PRIORS_ONLY)
  d_ff: int = attrs.field(default=256, kw_only=True)
  dropout: float = attrs.field(default=0.0, kw_only=True)
  # y tokens. y reaches the model normalised (see `regressor.YScaler`), so a narrow
  # exponent range suffices; smaller magnitudes decode as 0.
  y_digits: int = attrs.field(default=4, kw_only=True)
  y_min_exponent: int = attrs.field(default=-8, kw_only=True)
  y_max_exponent: int = attrs.field(default=8, kw_only=True)
  featurizer: FeaturizerConfig = attrs.field(factory=FeaturizerConfig, kw_only=True)

  def __attrs_post_init__(self):
    if self.d_model % self.num_heads:
      raise ValueError(
          f'ModelConfig: d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads}).'
      )
    for flag in ('prior_gate', 'current_slots'):
      if getattr(self, flag) and not self.prior_studies:
        raise ValueError(f'ModelConfig: {flag} needs prior_studies (it acts on prior studies).')

  @property
  def y_codec(self) -> NumberCodec:
    return NumberCodec(
        digits=self.y_digits, min_exponent=self.y_min_exponent, max_exponent=self.y_max_exponent
    )

  def to_dict(self) -> dict:
    return attrs.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> 'ModelConfig':
    d = dict(d)
    d['featurizer'] = FeaturizerConfig(**d.get('featurizer', {}))
    return cls(**d)


class SharedKeys(NamedTuple):
  """Self-attention in which every token sees the `shared` tokens and itself: the study
  encoder's pattern (metadata and context are shared; a query sees them and itself only).
  Attending over the shared keys alone costs L x S instead of L x L: at 50 trials and 512
  candidates, 55 keys instead of 570 (the dense masked attention was two thirds of an encoder
  block on a CPU). `Attention` takes it in place of a dense mask."""

  shared: torch.Tensor  # [B, L] bool
  index: torch.Tensor  # [B, S] the shared tokens' positions, S = the most in one row
  valid: torch.Tensor  # [B, S] bool: index[b, s] is one of row b's shared tokens
  bias: torch.Tensor | None = None  # [B, L, S] added to the scores on the shared keys

  @classmethod
  def of(cls, shared: torch.Tensor, bias: torch.Tensor | None = None) -> 'SharedKeys':
    """`bias` [B, L, L]: added to query l's score on key j (a token's own key gets none)."""
    index, valid = selected_positions(shared)  # a host read: meant for the CPU path
    if bias is not None:
      bias = bias.gather(2, index[:, None, :].expand(-1, bias.shape[1], -1))
    return cls(shared, index, valid, bias)

  @staticmethod
  def dense(shared: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The same pattern as a dense [B, 1, L, L] mask (True = attend), or with `bias` [B, L, L]
    an additive one (-inf = not attended)."""
    eye = torch.eye(shared.shape[1], dtype=torch.bool, device=shared.device)
    allowed = (shared[:, None, :] | eye)[:, None]
    if bias is None:
      return allowed
    return torch.where(allowed, bias[:, None], torch.tensor(float('-inf'), dtype=bias.dtype,
                                                            device=bias.device))


class Attention(nn.Module):
  """Multi-head attention with separate named projections. Works for self and cross."""

  def __init__(self, d_model: int, num_heads: int):
    super().__init__()
    self.num_heads = num_heads
    self.q_proj = nn.Linear(d_model, d_model)
    self.k_proj = nn.Linear(d_model, d_model)
    self.v_proj = nn.Linear(d_model, d_model)
    self.o_proj = nn.Linear(d_model, d_model)

  def split(self, x: torch.Tensor) -> torch.Tensor:
    """[B, L, D] -> [B, H, L, D/H]."""
    b, l, d = x.shape
    return x.view(b, l, self.num_heads, d // self.num_heads).transpose(1, 2)

  def merge(self, x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D/H] -> [B, L, D]."""
    b, h, l, dh = x.shape
    return x.transpose(1, 2).reshape(b, l, h * dh)

  def forward(self, x, context, mask=None, is_causal=False):
    q = self.split(self.q_proj(x))
    k = self.split(self.k_proj(context))
    v = self.split(self.v_proj(context))
    if isinstance(mask, SharedKeys):  # self-attention: x is context
      out = self._shared_and_own(q, k, v, mask)
    else:
      out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
    return self.o_proj(self.merge(out))

  @staticmethod
  def _shared_and_own(q, k, v, keys: SharedKeys) -> torch.Tensor:
    """Softmax over the shared keys plus the token's own key (a shared token's own key is
    among the shared ones already, so its second copy is masked)."""
    b, h, _, dh = q.shape
    at = keys.index[:, None, :, None].expand(b, h, keys.index.shape[1], dh)
    k_shared, v_shared = k.gather(2, at), v.gather(2, at)  # [B, H, S, dh]
    scale = 1.0 / math.sqrt(dh)
    scores = (q @ k_shared.transpose(-1, -2)) * scale  # [B, H, L, S]
    if keys.bias is not None:
      scores = scores + keys.bias[:, None].to(scores.dtype)
    scores = scores.masked_fill(~keys.valid[:, None, None, :], float('-inf'))
    own = (q * k).sum(-1, keepdim=True) * scale  # [B, H, L, 1]
    own = own.masked_fill(keys.shared[:, None, :, None], float('-inf'))
    weights = torch.softmax(torch.cat([scores, own], -1), -1)
    s = k_shared.shape[2]
    return weights[..., :s] @ v_shared + weights[..., s:] * v


class MLP(nn.Module):

  def __init__(self, d_model: int, d_ff: int):
    super().__init__()
    self.fc_in = nn.Linear(d_model, d_ff)
    self.fc_out = nn.Linear(d_ff, d_model)

  def forward(self, x):
    return self.fc_out(F.gelu(self.fc_in(x)))


class EncoderBlock(nn.Module):

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.ln_attn = nn.LayerNorm(cfg.d_model)
    self.attn = Attention(cfg.d_model, cfg.num_heads)
    self.ln_mlp = nn.LayerNorm(cfg.d_model)
    self.mlp = MLP(cfg.d_model, cfg.d_ff)
    self.drop = nn.Dropout(cfg.dropout)

  def forward(self, x, mask):
    h = self.ln_attn(x)
    x = x + self.drop(self.attn(h, h, mask))
    return x + self.drop(self.mlp(self.ln_mlp(x)))


class DecoderBlock(nn.Module):

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    self.ln_self = nn.LayerNorm(cfg.d_model)
    self.self_attn = Attention(cfg.d_model, cfg.num_heads)
    self.ln_cross = nn.LayerNorm(cfg.d_model)
    self.cross_attn = Attention(cfg.d_model, cfg.num_heads)
    self.ln_mlp = nn.LayerNorm(cfg.d_model)
    self.mlp = MLP(cfg.d_model, cfg.d_ff)
    self.drop = nn.Dropout(cfg.dropout)

  def run(self, y: torch.Tensor, self_attend, cross_attend) -> torch.Tensor:
    """The block's computation; where attention finds its keys is the caller's: teacher
    forcing (`forward`) and the cached sampler (`decoding.CachedDecoder`) both run this.

    self_attend(q, k, v) -> [B, H, L, dh] from this call's projected q/k/v (the sampler
    prepends its cached keys/values); cross_attend(attention, h) -> [B, L, D], the
    cross-attention's output (after `o_proj`) for the normalised states h.
    """
    att = self.self_attn
    h = self.ln_self(y)
    out = self_attend(att.split(att.q_proj(h)), att.split(att.k_proj(h)), att.split(att.v_proj(h)))
    y = y + self.drop(att.o_proj(att.merge(out)))
    y = y + self.drop(cross_attend(self.cross_attn, self.ln_cross(y)))
    return y + self.drop(self.mlp(self.ln_mlp(y)))

  def forward(self, y, memory, memory_mask):
    """Teacher forcing: every position at once, causal self-attention, y [B, T, D]."""
    cross = self.cross_attn
    k, v = cross.split(cross.k_proj(memory)), cross.split(cross.v_proj(memory))
    return self.run(
        y, lambda q, k_self, v_self: F.scaled_dot_product_attention(q, k_self, v_self,
                                                                    is_causal=True),
        lambda att, h: att.o_proj(att.merge(F.scaled_dot_product_attention(
            att.split(att.q_proj(h)), k, v, attn_mask=memory_mask))))


class NumberEmbedding(nn.Module):
  """A number's sign/exponent/digit tokens (one embedding per slot, concatenated) and a few
  real-valued features of it, mixed by a 2-layer ReLU FFN into one vector (as the
  symbolic-regression paper embeds a point)."""

  def __init__(self, codec: NumberCodec, d_model: int, num_features: int):
    super().__init__()
    slot = d_model // 4
    self.slots = nn.ModuleList(nn.Embedding(size, slot) for size in codec.slot_sizes)
    self.number_ffn = nn.Sequential(
        nn.Linear(slot * codec.length + num_features, d_model), nn.ReLU(),
        nn.Linear(d_model, d_model))

  def forward(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """ids [..., length] slot-local, features [..., num_features] -> [..., D]."""
    slots = [emb(ids[..., i]) for i, emb in enumerate(self.slots)]
    return self.number_ffn(torch.cat(slots + [features], dim=-1))


class ItemEmbedding(nn.Module):
  """One vector per item: name characters + value (number tokens or characters) + kind.

  Characters are embedded with their position and mean-pooled; a number goes through
  `NumberEmbedding` with three real features: symlog(value) and its two context-standardised
  z-scores (`serialization.standardized_values`).
  """

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    fz = cfg.featurizer
    d = cfg.d_model
    self.chars = nn.Embedding(fz.char_vocab, d, padding_idx=0)
    self.name_pos = nn.Embedding(fz.max_name_chars, d)
    self.text_pos = nn.Embedding(fz.max_text_chars, d)
    self.number = NumberEmbedding(fz.value_codec, d, num_features=3)
    self.kind = nn.Embedding(NUM_KINDS, d)
    self.mix = MLP(d, cfg.d_ff)
    self.ln = nn.LayerNorm(d)

  def _pool_chars(self, ids: torch.Tensor, pos: nn.Embedding) -> torch.Tensor:
    """[..., C] char ids -> [..., D], mean of (char + position) over non-pad characters.

    Summed with `embedding_bag` and a [C, D] matmul, never materialising the [..., C, D]
    per-character tensor (that was a fifth of fine-tuning's and sampling's time).
    """
    flat = ids.reshape(-1, ids.shape[-1])
    present = (flat > 0).to(self.chars.weight.dtype)
    total = F.embedding_bag(flat, self.chars.weight, mode='sum', padding_idx=0)
    total = total + present @ pos.weight[: ids.shape[-1]]
    pooled = total / present.sum(-1, keepdim=True).clamp_min(1.0)
    return pooled.reshape(*ids.shape[:-1], -1)

  def forward(self, items: dict[str, torch.Tensor],
              features: torch.Tensor | None = None) -> torch.Tensor:
    """items: names/kinds/numbers/scalars/texts of shape [..., P(, C)]; features [..., P, 2]
    (None: zeros, as for metadata items) -> [..., P, D]."""
    name = self._pool_chars(items['names'], self.name_pos)
    text = self._pool_chars(items['texts'], self.text_pos)
    scalars = items['scalars'].unsqueeze(-1)
    if features is None:
      features = scalars.new_zeros(scalars.shape[:-1] + (2,))
    number = self.number(items['numbers'], torch.cat([scalars, features], dim=-1))
    is_number = (items['kinds'] == 0).unsqueeze(-1).to(number.dtype)
    x = name + self.kind(items['kinds']) + is_number * number + (1 - is_number) * text
    return self.ln(x + self.mix(x))


# Slots for `ModelConfig.slot_binding`: at most this many parameters (and metric inputs) get
# a code of their own; the corpus draws up to 12 parameters and 2 metric inputs, conditional
# spaces a few more. Names ranked beyond it share the last slot.
MAX_SLOTS = 32
# Prior studies one context may hold (`ModelConfig.prior_studies`; study ids 1..this).
MAX_PRIOR_STUDIES = 8


def on_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
  """An input array on `device`. Narrowed id arrays (`StudyInputs.compact`) travel narrow and
  are widened there to the int64 the embeddings index with. To a GPU the copy goes from pinned
  memory without blocking, so the host builds the next step's inputs while the GPU trains (a
  plain copy from pageable memory waits for every kernel queued before it)."""
  if device.type == 'cuda':
    t = torch.from_numpy(np.ascontiguousarray(array)).pin_memory().to(device, non_blocking=True)
  else:
    t = torch.as_tensor(array, device=device)
  if t.dtype in (torch.int8, torch.int16, torch.int32):
    t = t.long()
  return t


def slot_permutations(num_views: int, num_items: int, seed: int = 0) -> torch.Tensor:
  """[V, MAX_SLOTS] slot tables for `num_views` views of a study with `num_items` parameter
  items (`OmniPredModel.slots` maps a name's rank r to slot table[r]): view 0 the identity, the
  others distinct random permutations of the first min(num_items, MAX_SLOTS) slots, from
  `seed`. Fewer views when fewer permutations exist (two parameters have two).

  Which code binds which parameter is arbitrary (in pretraining the names, and so their ranks,
  are random), so each view is an equally valid reading of the study and errs differently:
  averaging views (`encode` with `slot_views`) is an ensemble with no second model
  (`OmniPredRegressor.views`).
  """
  if num_views < 1:
    raise ValueError(f'num_views must be >= 1, got {num_views}.')
  p = min(num_items, MAX_SLOTS)
  rng = np.random.default_rng(seed)
  views = [tuple(range(p))]
  # p! distinct orders; beyond 8 items that is more than any ensemble asks for.
  available = math.factorial(p) if p <= 8 else num_views
  while len(views) < min(num_views, available):
    order = tuple(int(i) for i in rng.permutation(p))
    if order not in views:
      views.append(order)
  table = np.tile(np.arange(MAX_SLOTS), (len(views), 1))
  table[:, :p] = np.asarray(views)
  return torch.as_tensor(table)


# Roles of the encoder's tokens.
META, CONTEXT, QUERY = 0, 1, 2


class OmniPredModel(nn.Module):
  """The in-context surrogate LM: reads a study's metadata, its completed trials with their
  y (the context) and the trials to predict (the queries), and writes each query's y as
  number tokens. `forward` is teacher-forced training; sampling is in `decoding`.

  Encoder tokens: one per metadata item, one per trial. A trial's token is its parameter
  items (embedded by `ItemEmbedding`) averaged over the set and mixed by an MLP (with
  `slot_binding`, plus its values bound to per-parameter slot codes), plus, for a
  context trial, its y through a `NumberEmbedding`; no positional embeddings anywhere, so
  neither trial order nor parameter order can matter. Attention: metadata and context tokens
  attend to metadata and context; a query attends to metadata, context and itself only, so its
  prediction never depends on which other queries share the batch. With `prior_gate`, each
  prior study's trials weigh in every attention score by one learned log-weight
  (`prior_gate.PriorGate`). The decoder reads the
  query's final encoder state (one memory item per query) and writes sign, exponent, digits.
  """

  # 2: the in-context model (1 read one trial at a time).
  checkpoint_format = 'vizier-omnipred/2'

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    # Not `.config`: peft reads that attribute as a transformers config.
    self.model_config = cfg
    d = cfg.d_model
    codec = cfg.y_codec
    self.items = ItemEmbedding(cfg)
    self.trial_mlp = MLP(d, cfg.d_ff)
    self.ln_trial = nn.LayerNorm(d)
    self.y_embed = NumberEmbedding(codec, d, num_features=1)
    self.role = nn.Embedding(3, d)
    self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.encoder_layers))
    self.ln_memory = nn.LayerNorm(d)
    sizes = codec.slot_sizes
    offsets = [0]
    for s in sizes[:-1]:
      offsets.append(offsets[-1] + s)
    self.vocab_size = sum(sizes)
    self.bos_id = self.vocab_size
    self.register_buffer('slot_offsets', torch.tensor(offsets), persistent=False)
    # legal[t, v]: token v may be written at position t.
    legal = torch.zeros(len(sizes), self.vocab_size, dtype=torch.bool)
    for t, (o, s) in enumerate(zip(offsets, sizes)):
      legal[t, o:o + s] = True
    self.register_buffer('legal', legal, persistent=False)
    self.tokens = nn.Embedding(self.vocab_size + 1, d)
    self.positions = nn.Embedding(len(sizes), d)
    self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.decoder_layers))
    self.ln_out = nn.LayerNorm(d)
    self.head = nn.Linear(d, self.vocab_size)
    self.apply(init_weights)
    if cfg.slot_binding:
      # Rows: a linear-z code and a log-z code per slot, all orthonormal. The projection
      # starts at zero: the binding adds nothing until training finds it useful, so it can be
      # switched on in a trained model without changing its predictions (`growth`).
      self.slot_codes = nn.Parameter(nn.init.orthogonal_(torch.empty(2 * MAX_SLOTS, d)))
      self.bind_proj = nn.Linear(d, d)
      nn.init.zeros_(self.bind_proj.weight)
      nn.init.zeros_(self.bind_proj.bias)
    if cfg.prior_studies:
      # Zero output layer and vector: prior trials read as plain context trials until
      # training finds the codes useful (`growth` can switch this on in a trained model).
      self.study_code = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
      nn.init.zeros_(self.study_code[2].weight)
      nn.init.zeros_(self.study_code[2].bias)
      self.prior_role = nn.Parameter(torch.zeros(d))
    if cfg.prior_gate:
      self.prior_gate = PriorGate()  # starts at every prior study's log-weight 0: no change

  @property
  def device(self) -> torch.device:
    return self.head.weight.device

  def to_tensors(self, inputs: StudyInputs) -> dict[str, torch.Tensor]:
    dev = self.device
    item_keys = ('names', 'kinds', 'numbers', 'scalars', 'texts', 'mask')
    out = {k: on_device(getattr(inputs.items, k), dev) for k in item_keys}
    out.update({f'meta_{k}': on_device(getattr(inputs.meta, k), dev) for k in item_keys})
    codec = self.model_config.y_codec
    y = inputs.y  # 0 off the context (StudyInputs builds it so)
    out['features'] = on_device(inputs.features, dev)
    out['is_context'] = on_device(inputs.is_context, dev)
    out['present'] = on_device(inputs.present, dev)
    if inputs.study is not None:
      out['study'] = on_device(inputs.study, dev)
    out['y_ids'] = on_device(codec.encode_many(y), dev)
    # The context y's position in the study's normalised range [2, 3] -> [-1, 1].
    out['y_scalar'] = on_device(
        np.clip(2.0 * (y - 2.0) - 1.0, -STANDARD_CLIP, STANDARD_CLIP)[..., None].astype(np.float32),
        dev)
    return out

  def encode(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> memory [Q, 1, D] (one item per query, queries in (study, trial) order) and its
    attention mask [Q, 1, 1, 1] (True = attend).

    With `inputs['slot_views']` ([V, MAX_SLOTS], `slot_permutations`), every study is read
    once per view and a query's memory is the mean of its V states: an ensemble on the
    encoder side, so the decoder still runs once per query. The views run one after another:
    in one batch they ran no faster on a CPU and raised a 100-trial study's peak memory."""
    table = inputs.get('slot_views')
    if table is None:
      return self._encode(inputs)
    rest = {k: v for k, v in inputs.items() if k != 'slot_views'}
    b = len(inputs['present'])
    pooled = self._pooled_items(rest)  # the same in every view: only the slot codes move
    total = mask = None
    for row in table.to(self.device):
      memory, mask = self._encode(dict(rest, slot_permutation=row.expand(b, -1)), pooled)
      total = memory if total is None else total + memory
    return total / len(table), mask

  def _encode(self, inputs: dict[str, torch.Tensor],
              pooled: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    trial = self._bound_trials(self._pooled_items(inputs) if pooled is None else pooled, inputs)
    is_context = inputs['is_context']
    y = self.y_embed(inputs['y_ids'], inputs['y_scalar'])
    trial = trial + is_context.unsqueeze(-1).to(y.dtype) * y
    trial = trial + self.role(torch.where(is_context, CONTEXT, QUERY))
    priors = self.model_config.prior_studies and 'study' in inputs
    if priors:
      trial = trial + self._study_codes(trial, inputs['study'], inputs['present'])
    meta = self.items({k[5:]: inputs[k] for k in ('meta_names', 'meta_kinds', 'meta_numbers',
                                                  'meta_scalars', 'meta_texts')})
    meta = meta + self.role.weight[META]
    x = torch.cat([meta, trial], dim=1)  # [B, M + N, D]
    m = meta.shape[1]
    # keys: present metadata and context tokens for everyone, plus each token itself.
    shared = torch.cat([inputs['meta_mask'], is_context & inputs['present']], dim=1)  # [B, L]
    # Predicting on a CPU: the shared keys alone. On a GPU the dense mask (no host read of the
    # key count; its kernels do not mind), and in training too: LoRA steps over the gathered
    # keys were no faster, and training keeps the numbers it always had.
    sparse = x.device.type == 'cpu' and not torch.is_grad_enabled()
    bias = self._prior_bias(inputs, m) if priors and self.model_config.prior_gate else None
    allowed = SharedKeys.of(shared, bias) if sparse else SharedKeys.dense(shared, bias)
    for block in self.encoder:
      x = block(x, allowed)
    x = self.ln_memory(x[:, m:])
    queries = x[inputs['present'] & ~is_context]  # [Q, D]
    return queries[:, None], torch.ones(len(queries), 1, 1, 1, dtype=torch.bool,
                                        device=x.device)

  def _study_codes(self, trial: torch.Tensor, study: torch.Tensor,
                   present: torch.Tensor) -> torch.Tensor:
    """[B, N, D] what each prior trial's token gains: its study's code (an MLP of the mean of
    that study's tokens, y included) plus the prior-trial vector; 0 for the current study
    (`study` 0) and padding."""
    study = study.long().clamp(0, MAX_PRIOR_STUDIES)
    prior = (study > 0) & present
    member = F.one_hot(study, MAX_PRIOR_STUDIES + 1)[..., 1:].to(trial.dtype)
    member = member * prior.unsqueeze(-1).to(trial.dtype)  # [B, N, K]
    counts = member.sum(1).clamp_min(1.0)  # [B, K]
    means = torch.einsum('bnk,bnd->bkd', member, trial) / counts.unsqueeze(-1)
    codes = self.study_code(means)  # [B, K, D]
    return (torch.einsum('bnk,bkd->bnd', member, codes)
            + prior.unsqueeze(-1).to(trial.dtype) * self.prior_role)

  def _prior_bias(self, inputs: dict[str, torch.Tensor], num_meta: int) -> torch.Tensor:
    """[B, M + N, M + N] the prior studies' log-weights on the scores (`PriorGate`)."""
    study = inputs['study'].long().clamp(0, MAX_PRIOR_STUDIES) * inputs['present']
    log_weight = self.prior_gate(agreement_features(inputs, MAX_PRIOR_STUDIES))  # [B, K]
    token_study = torch.cat([study.new_zeros(study.shape[0], num_meta), study], 1)
    return PriorGate.key_bias(log_weight, token_study)

  def trial_tokens(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each trial's token from its parameter items alone (before its y and role): [B, N, D]."""
    return self._bound_trials(self._pooled_items(inputs), inputs)

  def _pooled_items(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The part of a trial's token that no slot order changes: its items embedded, pooled
    and mixed [B, N, D]."""
    items = self.items({k: inputs[k] for k in ('names', 'kinds', 'numbers', 'scalars', 'texts')},
                       inputs['features'])  # [B, N, P, D]
    mask = inputs['mask'].unsqueeze(-1).to(items.dtype)
    trial = (items * mask).sum(2) / mask.sum(2).clamp_min(1.0)
    return trial + self.trial_mlp(trial)

  def _bound_trials(self, pooled: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """`_pooled_items` plus the values bound to their slot codes (the part a view changes)."""
    out = pooled
    if self.model_config.slot_binding:
      codes = self.slot_codes.view(2, MAX_SLOTS, -1)
      slots = self.slots(inputs)
      mask = inputs['mask'].unsqueeze(-1).to(pooled.dtype)
      z = inputs['features'].to(pooled.dtype)  # context z-scores (linear, log); 0 for text
      bound = z[..., :1] * codes[0][slots] + z[..., 1:] * codes[1][slots]  # [B, N, P, D]
      out = out + self.bind_proj((bound * mask).sum(2))  # summed: each value keeps its scale
    return self.ln_trial(out)

  def slots(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, N, P] slot of every item: the rank of its name among the names present in the
    study's context or in its own trial. An order of content, not of the item axis, so no
    parameter order matters; and a query's slots never depend on the other queries. With
    `inputs['slot_permutation']` ([B, MAX_SLOTS], a table per study), rank r takes slot
    table[r]."""
    names = inputs['names'][:, 0]  # [B, P, C]: a study's items are named alike in every trial
    diff = names[:, :, None, :] - names[:, None, :, :]  # [B, P(i), P(j), C]
    first = (diff != 0).to(torch.uint8).argmax(-1, keepdim=True)  # first differing character
    j_before_i = diff.gather(-1, first).squeeze(-1) > 0  # name_j sorts before name_i
    is_context = inputs['is_context'] & inputs['present']
    if self.model_config.current_slots and 'study' in inputs:
      is_context = is_context & (inputs['study'] == 0)  # the prior studies' names do not count
    in_context = (inputs['mask'] & is_context.unsqueeze(-1)).any(1)  # [B, P]
    counted = in_context.unsqueeze(1) | inputs['mask']  # [B, N, P(j)]
    slots = (j_before_i.unsqueeze(1) & counted.unsqueeze(2)).sum(-1)  # [B, N, P(i)]
    slots = slots.clamp_max(MAX_SLOTS - 1)
    table = inputs.get('slot_permutation')  # [B, MAX_SLOTS], see `slot_permutations`
    if table is None:
      return slots
    return table.gather(1, slots.flatten(1)).view_as(slots)

  def logits(self, hidden: torch.Tensor, positions: torch.Tensor | int) -> torch.Tensor:
    """Decoder states -> logits with illegal tokens at each position set to -inf."""
    out = self.head(self.ln_out(hidden))
    return out.masked_fill(~self.legal[positions], float('-inf'))

  def forward(self, inputs: dict[str, torch.Tensor], y_ids: torch.Tensor) -> torch.Tensor:
    """Teacher forcing. y_ids: [Q, T] slot-local ids of the queries -> logits [Q, T, V]."""
    memory, mask = self.encode(inputs)
    global_ids = y_ids + self.slot_offsets
    bos = torch.full_like(global_ids[:, :1], self.bos_id)
    prev = torch.cat([bos, global_ids[:, :-1]], dim=1)
    t = prev.shape[1]
    y = self.tokens(prev) + self.positions.weight[:t]
    for block in self.decoder:
      y = block(y, memory, mask)
    return self.logits(y, torch.arange(t, device=y.device))

  def loss(self, inputs: dict[str, torch.Tensor], y_ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per y token."""
    logits = self.forward(inputs, y_ids)
    target = y_ids + self.slot_offsets
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))


def init_weights(m: nn.Module) -> None:
  """N(0, 0.02) weights, zero biases: for `module.apply` (both models use it)."""
  if isinstance(m, (nn.Linear, nn.Embedding)):
    nn.init.normal_(m.weight, std=0.02)
  if isinstance(m, nn.Linear):
    nn.init.zeros_(m.bias)


def num_parameters(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())

