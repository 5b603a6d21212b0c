"""A small encoder-decoder that reads a set of parameter items and writes y as number tokens.

Encoder: each item (see `serialization`) is embedded as one vector; transformer blocks with
no positional embeddings run over the set. Decoder: a causal transformer over the y tokens
(sign, exponent, mantissa digits) with cross-attention to the encoded items. All projections
are named `nn.Linear` modules (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `fc_in`, `fc_out`, and the
number-embedding FFN `number_ffn.0/2`) so that peft's LoRA can target them by name.

Shapes: B rows, P items, T = y_codec.length decoder positions, D = d_model, H heads.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from vizier_omnipred.numbers import NumberCodec
from vizier_omnipred.serialization import NUM_KINDS, FeaturizerConfig, ModelInputs

# peft matches these as suffixes of module names. The number-embedding FFN is included: without
# it LoRA cannot adapt how values are read (designer surrogate rank correlation 0.06-0.10 ->
# 0.14-0.19 on shifted Sphere 4-D at 15-30 trials).
LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc_in', 'fc_out',
                'number_ffn.0', 'number_ffn.2')


@attrs.frozen
class ModelConfig:
  """Every size of the model, and of the features it reads. Stored in each checkpoint."""

  d_model: int = attrs.field(default=128, kw_only=True)
  num_heads: int = attrs.field(default=4, kw_only=True)
  encoder_layers: int = attrs.field(default=2, kw_only=True)
  decoder_layers: int = attrs.field(default=2, kw_only=True)
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
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
    return self.o_proj(self.merge(out))


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

  def forward(self, y, memory, memory_mask):
    h = self.ln_self(y)
    y = y + self.drop(self.self_attn(h, h, is_causal=True))
    y = y + self.drop(self.cross_attn(self.ln_cross(y), memory, memory_mask))
    return y + self.drop(self.mlp(self.ln_mlp(y)))


class ItemEmbedding(nn.Module):
  """One vector per item: name characters + value (number tokens or characters) + kind.

  Characters are embedded with their position and mean-pooled; a number's sign, exponent and
  digit tokens are embedded per slot, concatenated with a symlog scalar and mixed by a
  2-layer ReLU FFN (as the symbolic-regression paper embeds a point).
  """

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    fz = cfg.featurizer
    d = cfg.d_model
    codec = fz.value_codec
    self.chars = nn.Embedding(fz.char_vocab, d, padding_idx=0)
    self.name_pos = nn.Embedding(fz.max_name_chars, d)
    self.text_pos = nn.Embedding(fz.max_text_chars, d)
    slot = d // 4
    self.slots = nn.ModuleList(nn.Embedding(size, slot) for size in codec.slot_sizes)
    self.number_ffn = nn.Sequential(
        nn.Linear(slot * codec.length + 1, d), nn.ReLU(), nn.Linear(d, d)
    )
    self.kind = nn.Embedding(NUM_KINDS, d)
    self.mix = MLP(d, cfg.d_ff)
    self.ln = nn.LayerNorm(d)

  def _pool_chars(self, ids: torch.Tensor, pos: nn.Embedding) -> torch.Tensor:
    """[B, P, C] char ids -> [B, P, D], mean of (char + position) over non-pad characters.

    Summed with `embedding_bag` and a [C, D] matmul, never materialising the [B, P, C, D]
    per-character tensor (that was a fifth of fine-tuning's and sampling's time).
    """
    flat = ids.reshape(-1, ids.shape[-1])
    present = (flat > 0).to(self.chars.weight.dtype)
    total = F.embedding_bag(flat, self.chars.weight, mode='sum', padding_idx=0)
    total = total + present @ pos.weight[: ids.shape[-1]]
    pooled = total / present.sum(-1, keepdim=True).clamp_min(1.0)
    return pooled.reshape(*ids.shape[:-1], -1)

  def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    name = self._pool_chars(inputs['names'], self.name_pos)
    text = self._pool_chars(inputs['texts'], self.text_pos)
    numbers = inputs['numbers']
    slots = [emb(numbers[..., i]) for i, emb in enumerate(self.slots)]
    number = self.number_ffn(torch.cat(slots + [inputs['scalars'].unsqueeze(-1)], dim=-1))
    is_number = (inputs['kinds'] == 0).unsqueeze(-1).to(number.dtype)
    x = name + self.kind(inputs['kinds']) + is_number * number + (1 - is_number) * text
    return self.ln(x + self.mix(x))


class OmniPredModel(nn.Module):
  """The surrogate LM. `forward` is teacher-forced training; sampling is in `decoding`."""

  def __init__(self, cfg: ModelConfig):
    super().__init__()
    # Not `.config`: peft reads that attribute as a transformers config.
    self.model_config = cfg
    d = cfg.d_model
    codec = cfg.y_codec
    self.items = ItemEmbedding(cfg)
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

  @property
  def device(self) -> torch.device:
    return self.head.weight.device

  def to_tensors(self, inputs: ModelInputs) -> dict[str, torch.Tensor]:
    dev = self.device
    return {
        'names': torch.as_tensor(inputs.names, device=dev),
        'kinds': torch.as_tensor(inputs.kinds, device=dev),
        'numbers': torch.as_tensor(inputs.numbers, device=dev),
        'scalars': torch.as_tensor(inputs.scalars, device=dev),
        'texts': torch.as_tensor(inputs.texts, device=dev),
        'mask': torch.as_tensor(inputs.mask, device=dev),
    }

  def encode(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> memory [B, P, D] and attention mask [B, 1, 1, P] (True = attend)."""
    x = self.items(inputs)
    mask = inputs['mask'][:, None, None, :]
    for block in self.encoder:
      x = block(x, mask)
    return self.ln_memory(x), mask

  def logits(self, hidden: torch.Tensor, positions: torch.Tensor | int) -> torch.Tensor:
    """Decoder states -> logits with illegal tokens at each position set to -inf."""
    out = self.head(self.ln_out(hidden))
    return out.masked_fill(~self.legal[positions], float('-inf'))

  def forward(self, inputs: dict[str, torch.Tensor], y_ids: torch.Tensor) -> torch.Tensor:
    """Teacher forcing. y_ids: [B, T] slot-local ids -> logits [B, T, V]."""
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

