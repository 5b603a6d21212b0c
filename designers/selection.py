"""Which candidates become suggestions: best first, no duplicates, a spread-out batch, full.

`select` never returns fewer than `count` suggestions: if the scored pool runs out of new
configurations (a small discrete space), `fill` supplies fresh points, and after 100 tries a
repeat is accepted rather than failing the request.
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

import numpy as np

MAX_FILL_ATTEMPTS = 100  # fresh points tried before a repeat is accepted


def select(unit: np.ndarray, params: Sequence, scores: np.ndarray | None, count: int,
           taken: set, *, key: Callable[[object], Hashable], min_distance: float,
           fill: Callable[[], object]) -> list[tuple[object, int | None]]:
  """-> `count` (parameters, pool index or None for a fill point).

  unit [n, d]: the candidates in the unit cube (for distances); params: the same as Vizier
  parameters; scores [n] (None: keep the pool's order); taken: keys of configurations already
  completed, active or chosen. Candidates closer than `min_distance` to one already in the
  batch are skipped on a first pass and accepted on a second.
  """
  order = np.arange(len(unit)) if scores is None else np.argsort(-scores, kind='stable')
  chosen: list[int] = []
  keys = set(taken)
  for relax in (False, True):
    for i in order:
      if len(chosen) == count:
        break
      k = key(params[i])
      if k in keys:
        continue
      if not relax and chosen and min_distance > 0:
        if np.min(np.linalg.norm(unit[chosen] - unit[i], axis=1)) < min_distance:
          continue
      chosen.append(int(i))
      keys.add(k)
  out: list[tuple[object, int | None]] = [(params[i], i) for i in chosen]
  attempts = 0
  while len(out) < count:
    extra = fill()
    attempts += 1
    if key(extra) in keys and attempts < MAX_FILL_ATTEMPTS:
      continue
    keys.add(key(extra))
    out.append((extra, None))
  return out
