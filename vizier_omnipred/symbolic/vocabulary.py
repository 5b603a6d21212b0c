"""Formula tokens <-> ids, and the grammar that keeps sampled formulas well formed.

A constant is written as three tokens, as the paper writes floats: its sign (``C+``/``C-``),
its base-10 exponent (``E-3`` ... ``E3``) and a two-digit mantissa (``M10`` ... ``M99``,
``M00`` for zero): 3.14159 -> ``C+ E0 M31``. The model only has to land near a constant;
BFGS refines it (`explain`).

`Grammar` tracks, for a batch of partial sequences, how many subtrees are still open and
where inside a constant each one is, and masks every token that could not complete a formula
within `max_len` tokens, so sampling cannot produce an unparsable sequence.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
import torch

from vizier_omnipred.numbers import NumberCodec
from vizier_omnipred.symbolic.expressions import BINARY_OPS, CONSTANT, UNARY_OPS, Formula

PAD, BOS, EOS = 0, 1, 2


@attrs.frozen
class Vocabulary:
  """The formula vocabulary for inputs x0..x{max_dim-1}."""

  max_dim: int = attrs.field(default=3, kw_only=True)
  min_exponent: int = attrs.field(default=-3, kw_only=True)
  max_exponent: int = attrs.field(default=3, kw_only=True)

  @property
  def codec(self) -> NumberCodec:
    return NumberCodec(digits=2, min_exponent=self.min_exponent, max_exponent=self.max_exponent)

  @property
  def words(self) -> tuple[str, ...]:
    return (('<pad>', '<bos>', '<eos>') + BINARY_OPS + UNARY_OPS
            + tuple(f'x{i}' for i in range(self.max_dim)) + ('C+', 'C-')
            + tuple(f'E{e}' for e in range(self.min_exponent, self.max_exponent + 1))
            + tuple(f'M{m:02d}' for m in range(100)))

  def __len__(self) -> int:
    return len(self.words)

  def index(self, word: str) -> int:
    return _index(self)[word]

  def span(self, prefix: str, start: str) -> np.ndarray:
    """Ids of the words starting with `prefix`, from the word `start` on."""
    lo = self.index(start)
    return np.array([i for i, w in enumerate(self.words) if w.startswith(prefix) and i >= lo])

  def encode(self, formula: Formula) -> list[int]:
    """Formula -> ids (no BOS/EOS). Constants outside the exponent range are clipped."""
    ids = []
    consts = iter(formula.constants)
    for tok in formula.tokens:
      if tok != CONSTANT:
        if tok.startswith('x') and int(tok[1:]) >= self.max_dim:
          raise ValueError(f'Input {tok} is beyond this vocabulary\'s max_dim={self.max_dim}.')
        ids.append(self.index(tok))
        continue
      value = float(np.clip(next(consts), -9.9 * 10.0**self.max_exponent,
                            9.9 * 10.0**self.max_exponent))
      sign, exp, d1, d2 = self.codec.encode(value)
      ids += [self.index('C-' if sign else 'C+'), self.index(f'E{exp + self.min_exponent}'),
              self.index(f'M{d1 * 10 + d2:02d}')]
    return ids

  def decode(self, ids: Sequence[int]) -> Formula:
    """Ids (stopping at EOS/PAD) -> Formula; raises ValueError if not one complete tree."""
    words = self.words
    tokens, constants = [], []
    seq = [int(i) for i in ids]
    k = 0
    while k < len(seq) and seq[k] not in (EOS, PAD):
      w = words[seq[k]]
      if w in ('C+', 'C-'):
        if k + 2 >= len(seq):
          raise ValueError('Truncated constant at the end of the sequence.')
        e, m = words[seq[k + 1]], words[seq[k + 2]]
        if not (e.startswith('E') and m.startswith('M')):
          raise ValueError(f'Malformed constant {w} {e} {m}.')
        mant = int(m[1:])
        value = mant / 10.0 * 10.0**int(e[1:])
        constants.append(-value if w == 'C-' else value)
        tokens.append(CONSTANT)
        k += 3
        continue
      if w.startswith(('E', 'M')) or w.startswith('<'):
        raise ValueError(f'Unexpected token {w!r} at position {k}.')
      tokens.append(w)
      k += 1
    return Formula(tokens, constants)


_INDEX_CACHE: dict = {}


def _index(vocab: Vocabulary) -> dict[str, int]:
  if vocab not in _INDEX_CACHE:
    _INDEX_CACHE[vocab] = {w: i for i, w in enumerate(vocab.words)}
  return _INDEX_CACHE[vocab]


class Grammar:
  """Batched prefix-grammar state; `mask()` gives the legal next tokens of each sequence."""

  def __init__(self, vocab: Vocabulary, dims: torch.Tensor, max_len: int):
    n = len(vocab)
    dev = dims.device
    self.max_len = max_len
    b = dims.shape[0]

    def onehot(ids) -> torch.Tensor:
      m = torch.zeros(n, dtype=torch.bool, device=dev)
      m[torch.as_tensor(np.asarray(ids, dtype=np.int64), device=dev)] = True
      return m

    self.binary = onehot([vocab.index(w) for w in BINARY_OPS])
    self.unary = onehot([vocab.index(w) for w in UNARY_OPS])
    self.sign = onehot([vocab.index('C+'), vocab.index('C-')])
    self.exponent = onehot(vocab.span('E', f'E{vocab.min_exponent}'))
    self.mantissa = onehot(vocab.span('M', 'M00'))
    self.eos = onehot([EOS])
    self.pad = onehot([PAD])
    x0 = vocab.index('x0')
    var = torch.zeros(b, n, dtype=torch.bool, device=dev)
    for d in range(vocab.max_dim):
      var[:, x0 + d] = dims > d
    self.variables = var
    self.arity_delta = torch.zeros(n, dtype=torch.long, device=dev)  # change of open subtrees
    self.arity_delta[self.binary] = 1
    self.arity_delta[self.sign] = -1
    self.arity_delta[x0:x0 + vocab.max_dim] = -1
    self.need = torch.ones(b, dtype=torch.long, device=dev)
    self.const_pos = torch.zeros(b, dtype=torch.long, device=dev)  # 1: exponent next, 2: mantissa
    self.length = torch.zeros(b, dtype=torch.long, device=dev)
    self.done = torch.zeros(b, dtype=torch.bool, device=dev)

  def mask(self) -> torch.Tensor:
    """[B, V] bool: True where the token may come next."""
    free = self.max_len - self.length  # tokens left before max_len
    m = (self.variables
         | (self.unary & (free - 1 >= self.need)[:, None])
         | (self.binary & (free - 1 >= self.need + 1)[:, None])
         | (self.sign & (free - 3 >= self.need - 1)[:, None]))
    m = torch.where((self.need == 0)[:, None], self.eos.expand_as(m), m)
    m = torch.where((self.const_pos == 1)[:, None], self.exponent.expand_as(m), m)
    m = torch.where((self.const_pos == 2)[:, None], self.mantissa.expand_as(m), m)
    return torch.where(self.done[:, None], self.pad.expand_as(m), m)

  def step(self, ids: torch.Tensor) -> None:
    """Advances every sequence by its chosen token `ids` [B]."""
    active = ~self.done
    in_const = self.const_pos > 0
    self.need = torch.where(active & ~in_const, self.need + self.arity_delta[ids], self.need)
    new_pos = torch.where(self.sign[ids], 1, torch.where(self.const_pos == 1, 2, 0))
    self.const_pos = torch.where(active, new_pos, self.const_pos)
    self.length = self.length + (active & (ids != EOS)).long()
    self.done = self.done | (ids == EOS)

  @property
  def finished(self) -> bool:
    return bool(self.done.all())
