"""Numbers as tokens: sign, exponent, then mantissa digits.

A finite float ``v`` is written as ``sign * d1.d2d3d4 * 10**e`` (scientific notation,
``d1 != 0`` unless ``v == 0``). Each part is one token, so every number is exactly
``2 + digits`` tokens long and decoding can be masked to the legal tokens at each position:
whatever is sampled parses.

Token order is sign, exponent, digits (coarse to fine): the model commits to an order of
magnitude before it writes digits. ``format_tokens`` prints them in OmniPred's reading order,
``<+><1><2><3><4><E-2>``.

Values whose magnitude is below ``10**min_exponent`` encode as zero; values at or above
``10**(max_exponent + 1)`` are rejected with an error that names the value and the range.
"""

from __future__ import annotations

import math
from typing import Sequence

import attrs
import numpy as np


@attrs.frozen
class NumberCodec:
  """Encodes floats to per-slot token ids and back.

  Slot ids are local to each slot: slot 0 (sign) in {0: '+', 1: '-'}, slot 1 (exponent)
  in [0, num_exponents), slots 2.. (digits) in [0, 10).
  """

  digits: int = attrs.field(default=4, kw_only=True)
  min_exponent: int = attrs.field(default=-30, kw_only=True)
  max_exponent: int = attrs.field(default=30, kw_only=True)

  def __attrs_post_init__(self):
    if self.digits < 1:
      raise ValueError(f'NumberCodec: digits must be >= 1, got {self.digits}.')
    if self.min_exponent >= self.max_exponent:
      raise ValueError(
          f'NumberCodec: min_exponent ({self.min_exponent}) must be below max_exponent'
          f' ({self.max_exponent}).'
      )

  @property
  def length(self) -> int:
    """Tokens per number."""
    return 2 + self.digits

  @property
  def num_exponents(self) -> int:
    return self.max_exponent - self.min_exponent + 1

  @property
  def slot_sizes(self) -> tuple[int, ...]:
    """Number of legal ids in each slot: (2, num_exponents, 10, 10, ...)."""
    return (2, self.num_exponents) + (10,) * self.digits

  @property
  def largest(self) -> float:
    """The largest magnitude with tokens: 9.99...9 x 10**max_exponent."""
    return float((10.0 - 10.0 ** (1 - self.digits)) * 10.0 ** self.max_exponent)

  def saturate(self, values: np.ndarray) -> np.ndarray:
    """Values clipped to +-`largest`, so that any finite value has tokens. For inputs only
    (parameter values, whose exact size the model also reads standardised); y targets are
    never clipped."""
    return np.clip(np.asarray(values, dtype=np.float64), -self.largest, self.largest)

  def encode(self, value: float) -> tuple[int, ...]:
    """One finite float -> slot ids, length `self.length`."""
    value = float(value)
    if not math.isfinite(value):
      raise ValueError(f'Cannot encode non-finite number {value!r}: only finite values have tokens.')
    sign = 1 if value < 0 else 0
    if value == 0.0:
      return (sign, 0) + (0,) * self.digits
    # Decimal gives correct rounding of the mantissa, including 9.99996 -> 1.000e1.
    text = f'{abs(value):.{self.digits - 1}e}'
    mantissa, exponent = text.split('e')
    exponent = int(exponent)
    if exponent < self.min_exponent:
      return (sign, 0) + (0,) * self.digits
    if exponent > self.max_exponent:
      raise ValueError(
          f'Cannot encode {value!r}: its exponent {exponent} is above the largest'
          f' representable exponent {self.max_exponent}.'
      )
    mantissa_digits = tuple(int(c) for c in mantissa.replace('.', ''))
    return (sign, exponent - self.min_exponent) + mantissa_digits

  def encode_many(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """[...] floats -> [..., length] int64 slot ids; vectorised, identical to `encode`."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
      bad = values[~np.isfinite(values)].reshape(-1)[0]
      raise ValueError(f'Cannot encode non-finite number {bad!r}: only finite values have tokens.')
    shape = values.shape
    v = np.abs(values.reshape(-1))
    sign = (values.reshape(-1) < 0).astype(np.int64)
    nonzero = v > 0
    safe = np.where(nonzero, v, 1.0)
    exponent = np.floor(np.log10(safe)).astype(np.int64)
    scale = 10 ** (self.digits - 1)
    # Mantissa as an integer in [10**(d-1), 10**d); fix log10's off-by-one at powers of ten.
    for _ in range(2):
      mantissa = np.rint(safe / np.power(10.0, exponent.astype(np.float64)) * scale)
      exponent = np.where(mantissa < scale, exponent - 1, exponent)
      exponent = np.where(mantissa >= 10 * scale, exponent + 1, exponent)
    mantissa = np.rint(safe / np.power(10.0, exponent.astype(np.float64)) * scale)
    carry = mantissa >= 10 * scale  # 9.99996 rounds up to 10.000 -> 1.000e+1
    mantissa = np.where(carry, np.rint(mantissa / 10), mantissa).astype(np.int64)
    exponent = np.where(carry, exponent + 1, exponent)
    if np.any(nonzero & (exponent > self.max_exponent)):
      i = int(np.argmax(nonzero & (exponent > self.max_exponent)))
      raise ValueError(
          f'Cannot encode {values.reshape(-1)[i]!r}: its exponent {exponent[i]} is above the'
          f' largest representable exponent {self.max_exponent}.'
      )
    underflow = ~nonzero | (exponent < self.min_exponent)
    out = np.zeros((len(v), self.length), dtype=np.int64)
    out[:, 0] = sign
    out[:, 1] = np.where(underflow, 0, exponent - self.min_exponent)
    for k in range(self.digits):
      digit = (mantissa // 10 ** (self.digits - 1 - k)) % 10
      out[:, 2 + k] = np.where(underflow, 0, digit)
    return out.reshape(shape + (self.length,))

  def decode(self, ids: Sequence[int]) -> float:
    """Slot ids -> float. Any in-range ids parse (a leading zero digit is allowed)."""
    ids = tuple(int(i) for i in ids)
    if len(ids) != self.length:
      raise ValueError(f'Expected {self.length} slot ids, got {len(ids)}: {ids}.')
    for slot, (i, size) in enumerate(zip(ids, self.slot_sizes)):
      if not 0 <= i < size:
        raise ValueError(f'Slot {slot} id {i} is outside [0, {size}).')
    return float(self.decode_many(np.asarray([ids]))[0])

  def decode_many(self, ids: np.ndarray) -> np.ndarray:
    """[..., length] slot ids -> [...] float64, vectorised."""
    ids = np.asarray(ids)
    sign = np.where(ids[..., 0] == 1, -1.0, 1.0)
    exponent = ids[..., 1].astype(np.float64) + self.min_exponent
    weights = 10.0 ** -np.arange(self.digits, dtype=np.float64)
    mantissa = (ids[..., 2:].astype(np.float64) * weights).sum(-1)
    with np.errstate(over='ignore'):
      return sign * mantissa * np.power(10.0, exponent)

  def format_tokens(self, ids: Sequence[int]) -> str:
    """OmniPred's reading order: ``<+><1><2><3><4><E-2>`` (integer mantissa, shifted exponent)."""
    ids = tuple(int(i) for i in ids)
    sign = '<->' if ids[0] == 1 else '<+>'
    digits = ''.join(f'<{d}>' for d in ids[2:])
    exponent = ids[1] + self.min_exponent - (self.digits - 1)
    if all(d == 0 for d in ids[2:]):
      exponent = 0
    return f'{sign}{digits}<E{exponent}>'

