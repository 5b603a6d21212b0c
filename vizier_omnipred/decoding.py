"""Batched, constrained sampling of y tokens with a KV cache.

Every candidate is encoded once. Its cross-attention keys/values are computed once per
decoder layer and its S samples attend to them as S queries (no copy of the memory per
sample); self-attention keys/values go into a preallocated cache, one slot per position.
At each position only that slot's tokens are legal, so every sample parses to a float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vizier_omnipred.model import OmniPredModel


class CachedDecoder:
  """Runs decoder blocks one position at a time for B memories x S samples each.

  Cross-attention keys/values are computed once per block from the memory [B, N, D]; the S
  samples of each memory attend to them as S queries. Self-attention keys/values go into a
  cache preallocated for `max_len` positions. Blocks are `model.DecoderBlock`s.
  """

  def __init__(self, blocks, memory: torch.Tensor, mask: torch.Tensor, num_samples: int,
               max_len: int):
    self.blocks = blocks
    self.mask = mask
    b, _, d = memory.shape
    self.shape = (b, num_samples, d)
    self.cross, self.caches = [], []
    for block in blocks:
      att = block.cross_attn
      self.cross.append((att.split(att.k_proj(memory)), att.split(att.v_proj(memory))))
      h = block.self_attn.num_heads
      shape = (b * num_samples, h, max_len, d // h)
      self.caches.append((memory.new_empty(shape), memory.new_empty(shape)))

  def step(self, y: torch.Tensor, t: int) -> torch.Tensor:
    """y [B, S, D]: embeddings of the tokens at position t -> decoder states [B, S, D]."""
    b, s, d = self.shape
    for block, (ck, cv), (k_cache, v_cache) in zip(self.blocks, self.cross, self.caches):
      att = block.self_attn
      h = block.ln_self(y).reshape(b * s, 1, d)
      q = att.split(att.q_proj(h))  # [B*S, H, 1, dh]
      k_cache[:, :, t:t + 1] = att.split(att.k_proj(h))
      v_cache[:, :, t:t + 1] = att.split(att.v_proj(h))
      o = F.scaled_dot_product_attention(q, k_cache[:, :, :t + 1], v_cache[:, :, :t + 1])
      y = y + att.o_proj(att.merge(o)).reshape(b, s, d)
      att = block.cross_attn
      q = att.split(att.q_proj(block.ln_cross(y)))  # [B, H, S, dh]
      o = F.scaled_dot_product_attention(q, ck, cv, attn_mask=self.mask)
      y = y + att.o_proj(att.merge(o))
      y = y + block.mlp(block.ln_mlp(y))
    return y


@torch.no_grad()
def sample_ids(
    model: OmniPredModel,
    inputs: dict[str, torch.Tensor],
    num_samples: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
  """-> [B, S, T] slot-local ids. temperature 0 decodes greedily (S identical rows)."""
  if num_samples < 1:
    raise ValueError(f'num_samples must be >= 1, got {num_samples}.')
  if temperature < 0:
    raise ValueError(f'temperature must be >= 0, got {temperature}.')
  memory, mask = model.encode(inputs)
  b = memory.shape[0]
  s = num_samples
  sizes = model.model_config.y_codec.slot_sizes
  offsets = model.slot_offsets.tolist()
  num_pos = len(sizes)
  decoder = CachedDecoder(model.decoder, memory, mask, s, num_pos)
  prev = torch.full((b, s), model.bos_id, dtype=torch.long, device=memory.device)
  out = torch.empty((b, s, num_pos), dtype=torch.long, device=memory.device)
  for t in range(num_pos):
    y = decoder.step(model.tokens(prev) + model.positions.weight[t], t)  # [B, S, D]
    lo, size = offsets[t], sizes[t]
    logits = model.head(model.ln_out(y))[..., lo:lo + size].float()  # [B, S, size]
    if temperature == 0:
      ids = logits.argmax(-1)
    else:
      probs = F.softmax(logits / temperature, dim=-1).reshape(b * s, size)
      ids = torch.multinomial(probs, 1, generator=generator).reshape(b, s)
    out[..., t] = ids
    prev = ids + lo
  return out
