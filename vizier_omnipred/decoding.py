"""Batched, constrained sampling of y tokens with a KV cache and shared prefixes.

Every candidate is encoded once and its cross-attention keys/values are computed once per
decoder layer. The decoder runs on *rows*, one per distinct prefix: all S samples of a
candidate start from BOS (one row), and a row splits only when samples draw different tokens.
A trained surrogate is confident about sign and exponent, so 16 samples x 6 positions need
~19 rows per candidate instead of 96. Tokens are still drawn per sample, from the logits of
the sample's row, so the draws are those of one row per sample.

Two ways down the tree share that loop: random samples (`sample_ids`) and exact quantiles
(`quantile_ids`, which picks each token by the cumulative probability of its level).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from vizier_omnipred.model import OmniPredModel


class CachedDecoder:
  """Runs decoder blocks one position at a time over rows of (memory, prefix).

  `step(y, t, memory_index, parent)`: y [R, D] embeds the token at position t < `positions`
  of R rows; `memory_index[r]` is the memory row r reads; `parent[r]` is the row of step t-1
  whose prefix row r extends (None: the same rows in the same order). Blocks are
  `model.DecoderBlock`s, run through `DecoderBlock.run`: the block's computation exists once,
  for teacher forcing and for sampling alike; only where attention finds its keys differs.

  Cross-attention never copies keys/values per row: the rows' queries are scattered into a
  [B, H, m, dh] block (m = most rows on one memory) and attend to their own memory's keys in
  one batched call. Gathering [R, H, N, dh] keys per row instead allocated ~100 MB per step
  in sizes that change every step, which fragmented the heap: a process running studies one
  after another grew by ~50 MB per study.

  A memory of one item (the surrogate's: one encoder state per query) needs no attention at
  all: a softmax over one key is 1, so every row's cross-attention output is its memory's
  `o_proj(v_proj(memory))`, computed once per memory instead of once per row and step.
  """

  def __init__(self, blocks, memory: torch.Tensor, mask: torch.Tensor, positions: int):
    self.blocks = blocks
    # Each row's keys/values live in one [R, H, positions, dh] buffer per block: a step
    # gathers the parents' buffers and writes its own position, where appending to the
    # prefix (gather, then concatenate) copied every key twice.
    self.positions = positions
    self.mask = mask  # [B, 1, 1, N]
    self.cross = []
    # One item, attended by every memory (a memory allowed no key has no attention output).
    self.single = memory.shape[1] == 1 and bool(mask.all())
    for block in blocks:
      att = block.cross_attn
      if self.single:
        self.cross.append(att.o_proj(att.v_proj(memory)))  # [B, 1, D]
      else:
        self.cross.append((att.split(att.k_proj(memory)), att.split(att.v_proj(memory))))
    self.caches: list[tuple[torch.Tensor, torch.Tensor]] = []  # per block: [R, H, positions, dh]
    self.length = 0  # positions decoded so far
    self._index = None
    self._rows: tuple = ()

  def _cross_rows(self, memory_index: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(slot of each row in the [B * m] query block, m = most rows on one memory)."""
    if memory_index is not self._index:
      counts = torch.bincount(memory_index, minlength=self.mask.shape[0])
      starts = torch.cumsum(counts, 0) - counts
      order = torch.argsort(memory_index, stable=True)
      rank = torch.empty_like(memory_index)
      rank[order] = (torch.arange(len(memory_index), device=memory_index.device)
                     - starts[memory_index[order]])
      m = int(counts.max())
      self._rows = (memory_index * m + rank, m)
      self._index = memory_index
    return self._rows

  def _cross_attend(self, att, h: torch.Tensor, cross,
                    memory_index: torch.Tensor) -> torch.Tensor:
    """Rows' normalised states h [R, 1, D] against each row's own memory -> [R, 1, D]."""
    if self.single:
      return cross[memory_index]
    k, v = cross  # [B, H, N, dh]
    slot, m = self._cross_rows(memory_index)
    q = att.split(att.q_proj(h))  # [R, H, 1, dh]
    _, heads, _, dh = q.shape
    b = k.shape[0]
    block = q.new_zeros(b * m, heads, dh)
    block[slot] = q[:, :, 0]
    o = F.scaled_dot_product_attention(block.view(b, m, heads, dh).transpose(1, 2), k, v,
                                       attn_mask=self.mask)  # [B, H, m, dh]
    return att.o_proj(att.merge(o.transpose(1, 2).reshape(b * m, heads, dh)[slot][:, :, None]))

  def step(self, y: torch.Tensor, t: int, memory_index: torch.Tensor,
           parent: torch.Tensor | None = None) -> torch.Tensor:
    """-> decoder states [R, D] at position t."""
    if t != self.length:
      raise ValueError(f'step({t}) out of order: {self.length} positions are decoded.')
    if t >= self.positions:
      raise ValueError(f'step({t}) beyond the {self.positions} positions this decoder holds.')
    y = y[:, None]  # [R, 1, D]
    new_caches = []
    for i, (block, cross) in enumerate(zip(self.blocks, self.cross)):

      def self_attend(q, k, v, i=i):
        """This position's q against the row's cached keys/values plus its own."""
        if self.caches:
          keys, values = self.caches[i]
          if parent is not None:  # each row takes its parent's prefix
            keys, values = keys.index_select(0, parent), values.index_select(0, parent)
        else:
          keys = k.new_empty(k.shape[0], k.shape[1], self.positions, k.shape[3])
          values = torch.empty_like(keys)
        keys[:, :, t], values[:, :, t] = k[:, :, 0], v[:, :, 0]
        new_caches.append((keys, values))
        return F.scaled_dot_product_attention(q, keys[:, :, :t + 1], values[:, :, :t + 1])

      y = block.run(y, self_attend,
                    lambda att, h, cross=cross: self._cross_attend(att, h, cross, memory_index))
    self.caches = new_caches
    self.length += 1
    return y[:, 0]


def _decode(model: OmniPredModel, inputs: dict[str, torch.Tensor], width: int,
            choose: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
  """The one decoder loop: `width` draws per query, each a path down the token tree.

  choose(t, logits [B * width, size]) -> ids [B * width]: the slot-local token each draw takes
  at position t (its logits are its prefix row's, restricted to the slot's legal tokens).
  Draws on the same prefix share a row; rows split where their draws' tokens differ.
  -> [B, width, T] slot-local ids.
  """
  memory, mask = model.encode(inputs)
  b = memory.shape[0]
  dev = memory.device
  sizes = model.model_config.y_codec.slot_sizes
  offsets = model.slot_offsets.tolist()
  decoder = CachedDecoder(model.decoder, memory, mask, len(sizes))
  # One row per distinct prefix; every draw starts on its memory's BOS row.
  row_memory = torch.arange(b, device=dev)
  row_token = torch.full((b,), model.bos_id, dtype=torch.long, device=dev)
  draw_row = torch.arange(b, device=dev).repeat_interleave(width)  # [B*W], query-major
  parent = None
  out = torch.empty((b * width, len(sizes)), dtype=torch.long, device=dev)
  for t, (lo, size) in enumerate(zip(offsets, sizes)):
    y = decoder.step(model.tokens(row_token) + model.positions.weight[t], t, row_memory, parent)
    logits = model.head(model.ln_out(y))[:, lo:lo + size].float()[draw_row]  # [B*W, size]
    ids = choose(t, logits)
    out[:, t] = ids
    if t + 1 < len(sizes):  # rows of the next step: distinct (row, token) pairs
      keys, draw_row = torch.unique(draw_row * size + ids, return_inverse=True)
      parent = torch.div(keys, size, rounding_mode='floor')
      row_memory, row_token = row_memory[parent], keys % size + lo
  return out.view(b, width, len(sizes))


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

  def choose(t, logits):
    del t
    if temperature == 0:
      return logits.argmax(-1)
    probs = F.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]

  return _decode(model, inputs, num_samples, choose)


@torch.no_grad()
def quantile_ids(
    model: OmniPredModel,
    inputs: dict[str, torch.Tensor],
    levels: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
  """-> [B, L, T] slot-local ids of the `levels` quantiles of each query's y distribution.

  Exact, without sampling: the tokens go coarse to fine (sign, exponent, digits), so y's
  order is the order of the token sequences, with the children of a prefix taken in
  ascending value (for a negative sign: descending exponents and digits). Descending the
  tree, each level picks the child whose cumulative probability reaches it, and is rescaled
  to within that child. No Monte Carlo error: the median of 64 samples has a standard error
  of ~0.16 predictive standard deviations, enough to swap the ranks of close candidates.
  Levels on the same prefix share a decoder row, as samples do.
  """
  if temperature <= 0:
    raise ValueError(f'temperature must be > 0 for quantiles, got {temperature}.')
  levels = torch.as_tensor(levels, dtype=torch.float64)
  if levels.ndim != 1 or not bool(((levels > 0) & (levels < 1)).all()):
    raise ValueError(f'quantile levels must be a 1-D list in (0, 1), got {levels.tolist()}.')
  state = {}
  smallest = torch.finfo(torch.float64).tiny  # a level stays > 0: a child of p 0 is never picked

  def choose(t, logits):
    if t == 0:
      state['level'] = levels.to(logits.device).repeat(len(logits) // len(levels))
    size = logits.shape[-1]
    probs = F.softmax(logits.double() / temperature, dim=-1)  # ids ascending
    # Ascending value: the sign slot puts '-' (id 1) first; below a '-', larger ids are smaller.
    descending = state['negative'] if t > 0 else torch.ones(len(probs), dtype=torch.bool,
                                                            device=probs.device)
    ordered = torch.where(descending[:, None], probs.flip(-1), probs)
    cum = torch.cumsum(ordered, -1)
    level = state['level']
    pick = torch.searchsorted(cum, level[:, None]).clamp(max=size - 1)[:, 0]
    below = torch.where(pick > 0, cum.gather(1, (pick - 1).clamp(min=0)[:, None])[:, 0], 0.0)
    mass = ordered.gather(1, pick[:, None])[:, 0]
    state['level'] = ((level - below) / mass.clamp(min=smallest)).clamp(smallest, 1.0)
    ids = torch.where(descending, size - 1 - pick, pick)
    if t == 0:
      state['negative'] = ids == 1
    return ids

  return _decode(model, inputs, len(levels), choose)
