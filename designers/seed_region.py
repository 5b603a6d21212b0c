"""Where a study's quasi-random seed trials are drawn once prior studies are set: the part of
the search space its prior studies' best trials span.

A box around the good configurations of earlier, related tasks (Perrone et al. 2019,
"Learning search spaces for Bayesian optimization: another view of hyperparameter transfer
learning"): on each numeric axis from the lowest to the highest value those trials took, on
a categorical axis the categories they took; an axis none of them sets keeps its whole range.
The seeds are meant to skip the regions every prior study found poor (an SVM's kernels that
predict one class) while still spreading over what the prior studies do not agree on. Off by
default (`OmniPredDesignerConfig.seed_region_share`): the boxes of 30-trial sweeps are wide,
and on the transfer benchmark the seeds drawn in them were no better than seeds anywhere
(docs/design.md).
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
from vizier import pyvizier as vz

from designers.candidates import CATEGORICAL, CONTINUOUS, CandidateSpace


@attrs.frozen(eq=False)
class SeedRegion:
  """A box of the unit cube [low, high] per axis; on a categorical axis, the allowed cells
  (None: every cell)."""

  low: np.ndarray  # [d]
  high: np.ndarray  # [d]
  categories: tuple  # [d] of int arrays of allowed cell indices, or None
  sizes: np.ndarray  # [d] cells per axis (a categorical axis' categories)

  @classmethod
  def spanning(cls, space: CandidateSpace, trials: Sequence[vz.Trial]) -> 'SeedRegion':
    """The box the `trials` (of this or another study, matched by parameter name) span. A
    value this space cannot hold (a category it lacks, a string on a numeric axis) is left
    out; an axis with no value left keeps its whole range."""
    d = space.dim
    low, high, categories = np.zeros(d), np.ones(d), [None] * d
    for j, (name, axis) in enumerate(zip(space.names, space.axes)):
      units = []
      for trial in trials:
        value = trial.parameters.get(name)
        if value is None:
          continue
        try:
          units.append(axis.to_unit(value.value))
        except (ValueError, TypeError):
          continue
      if not units:
        continue
      units = np.clip(np.asarray(units), 0.0, 1.0)
      if axis.kind == CONTINUOUS:
        low[j], high[j] = units.min(), units.max()
      else:
        cells = np.unique(np.minimum(np.floor(units * axis.size), axis.size - 1)).astype(int)
        if axis.kind == CATEGORICAL:
          categories[j] = cells
        else:  # ordinal: from the lowest cell's lower edge to the highest cell's upper edge
          low[j], high[j] = cells.min() / axis.size, (cells.max() + 1) / axis.size
    return cls(low, high, tuple(categories), np.asarray(space.sizes))

  def place(self, unit: np.ndarray) -> np.ndarray:
    """Points [n, d] of the whole cube (e.g. Halton's) -> the same points spread over the box,
    each categorical coordinate on one of its allowed cells (unsnapped; the space snaps)."""
    unit = np.asarray(unit, dtype=np.float64)
    out = self.low + unit * (self.high - self.low)
    for j, cells in enumerate(self.categories):
      if cells is not None:
        pick = cells[np.minimum(np.floor(unit[:, j] * len(cells)), len(cells) - 1).astype(int)]
        out[:, j] = (pick + 0.5) / self.sizes[j]
    return out
