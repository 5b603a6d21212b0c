"""The candidate pool: every parameter of a search space (flat or conditional) as one axis
of a unit cube.

DOUBLE parameters map linearly (or, on a LOG scale, in log space) onto [0, 1]; INTEGER,
DISCRETE and CATEGORICAL become indices, placed at (i + 0.5) / n, so that distances, Halton
points and local moves work on one array. Converting back walks the search-space tree: a
parent's coordinate picks its value, and only the children that value selects are read, so
every candidate is a valid configuration (children exist exactly when their parent selects
them). A trial's inactive parameters sit at the centre of their axis (they do not matter to
its configuration, only to distances).
"""

from __future__ import annotations

import math
from typing import Sequence

import attrs
import numpy as np
from scipy.stats import qmc
from vizier import pyvizier as vz

from vizier_omnipred import search_space

CONTINUOUS, ORDINAL, CATEGORICAL = 0, 1, 2
_INACTIVE = 0.5  # where a trial's inactive parameters sit on their axis


@attrs.frozen
class Axis:
  """One parameter as a unit interval."""

  config: vz.ParameterConfig
  kind: int
  size: int  # cells of a discrete kind; 1 for CONTINUOUS

  @classmethod
  def of(cls, pc: vz.ParameterConfig) -> 'Axis':
    if pc.type == vz.ParameterType.DOUBLE:
      return cls(pc, CONTINUOUS, 1)
    if pc.type == vz.ParameterType.INTEGER:
      lo, hi = pc.bounds
      return cls(pc, ORDINAL, int(hi) - int(lo) + 1)
    if pc.type in (vz.ParameterType.DISCRETE, vz.ParameterType.CATEGORICAL):
      kind = CATEGORICAL if pc.type == vz.ParameterType.CATEGORICAL else ORDINAL
      return cls(pc, kind, len(pc.feasible_values))
    raise ValueError(f'parameter {pc.name!r} has type {pc.type}, which OmniPredDesigner does'
                     ' not handle.')

  @property
  def _log(self) -> bool:
    return self.config.scale_type == vz.ScaleType.LOG and self.config.bounds[0] > 0

  def to_unit(self, value) -> float:
    pc = self.config
    if self.kind == CONTINUOUS:
      lo, hi = pc.bounds
      if hi <= lo:
        return 0.5
      if self._log:
        return (math.log(float(value)) - math.log(lo)) / (math.log(hi) - math.log(lo))
      return (float(value) - lo) / (hi - lo)
    if pc.type == vz.ParameterType.INTEGER:
      index = round(float(value)) - int(pc.bounds[0])
    elif pc.type == vz.ParameterType.CATEGORICAL:
      index = pc.feasible_values.index(str(value))
    else:
      index = int(np.argmin(np.abs(np.asarray(pc.feasible_values) - float(value))))
    return (index + 0.5) / self.size

  def from_unit(self, u: float):
    pc = self.config
    if self.kind == CONTINUOUS:
      lo, hi = pc.bounds
      if self._log:
        return float(min(hi, max(lo, math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))))
      return float(min(hi, max(lo, lo + u * (hi - lo))))
    index = min(int(u * self.size), self.size - 1)
    if pc.type == vz.ParameterType.INTEGER:
      return int(pc.bounds[0]) + index
    return pc.feasible_values[index]


class CandidateSpace:
  """Unit-cube view of a search space: [n, d] arrays <-> Vizier parameters."""

  def __init__(self, space: vz.SearchSpace, *, seed: int = 0):
    configs = list(search_space.all_parameters(space).values())
    if not configs:
      raise ValueError('OmniPredDesigner needs a search space with at least one parameter.')
    self._search_space = space
    self.axes = [Axis.of(pc) for pc in configs]
    self.names = [pc.name for pc in configs]
    self._index = {name: j for j, name in enumerate(self.names)}
    self.kinds = np.asarray([a.kind for a in self.axes], dtype=np.int64)
    self.sizes = np.asarray([a.size for a in self.axes], dtype=np.int64)
    self._halton = qmc.Halton(d=self.dim, seed=seed)
    self._halton.fast_forward(1)  # the origin is a corner; the centre is suggested separately

  @property
  def dim(self) -> int:
    return len(self.axes)

  @property
  def all_continuous(self) -> bool:
    """Every parameter continuous (DOUBLE), none conditional."""
    return (bool(np.all(self.kinds == CONTINUOUS))
            and not self._search_space.is_conditional)

  def to_unit(self, trials: Sequence[vz.TrialSuggestion], *, foreign: bool = False
              ) -> np.ndarray:
    """Trials -> [n, d] points in the unit cube (inactive parameters at their axis' centre).
    `foreign`: trials of another study, matched by name; a value this space cannot hold (a
    category it lacks, a non-positive value on a log axis, a string on a numeric axis) sits
    at its axis' centre too, and one out of range on the nearest edge."""
    unit = np.full((len(trials), self.dim), _INACTIVE)
    for i, trial in enumerate(trials):
      for name, value in trial.parameters.items():
        j = self._index.get(name)
        if j is None:
          continue
        try:
          unit[i, j] = self.axes[j].to_unit(value.value)
        except (ValueError, TypeError):
          if not foreign:
            raise
    return self.snap(unit)

  def snap(self, unit: np.ndarray) -> np.ndarray:
    """Rounds discrete coordinates to their cell centres, clips to the cube."""
    unit = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)
    disc = self.kinds != CONTINUOUS
    idx = np.minimum(np.floor(unit[:, disc] * self.sizes[disc]), self.sizes[disc] - 1)
    unit[:, disc] = (idx + 0.5) / self.sizes[disc]
    return unit

  def to_parameters(self, unit: np.ndarray) -> list[vz.ParameterDict]:
    """[n, d] unit points -> valid Vizier parameters (the active ones only)."""
    unit = self.snap(unit)
    out = []
    for row in unit:
      values = search_space.build_parameters(
          self._search_space,
          lambda pc, row=row: self.axes[self._index[pc.name]].from_unit(row[self._index[pc.name]]))
      out.append(vz.ParameterDict(values))
    return out

  def centre(self) -> np.ndarray:
    return self.snap(np.full((1, self.dim), 0.5))

  def quasi_random(self, n: int, *, within=None) -> np.ndarray:
    """n Halton points (the sequence advances: successive calls give new points); `within`
    maps them from the whole cube onto a part of it first (`SeedRegion.place`)."""
    if n <= 0:
      return np.zeros((0, self.dim))
    points = self._halton.random(n)
    return self.snap(within(points) if within is not None else points)

  def local(self, centres: np.ndarray, n: int, radius: float,
            rng: np.random.Generator, *, min_scale: float = 1.0,
            movable: np.ndarray | None = None) -> np.ndarray:
    """n moves around `centres` [k, d] (earlier centres are drawn more often).

    Each move changes a random subset of coordinates (about 3, at least 1): continuous and
    ordinal ones by N(0, radius * scale) in the cube (scale log-uniform in [min_scale, 1]; 1 when
    `min_scale` is 1), categorical ones to a different category, drawn uniformly. `movable`
    [d] (default: all) limits the moves to those coordinates (about 3 of them change); the
    others keep the centre's.
    """
    if n <= 0 or len(centres) == 0:
      return np.zeros((0, self.dim))
    d = self.dim
    axes = np.arange(d) if movable is None else np.flatnonzero(movable)
    if not axes.size:
      raise ValueError('local moves need at least one movable coordinate.')
    k = len(centres)
    weights = 1.0 / np.arange(1, k + 1)
    base = centres[rng.choice(k, size=n, p=weights / weights.sum())]
    change = rng.random((n, d)) < min(1.0, 3.0 / axes.size)
    change[np.arange(n), axes[rng.integers(0, axes.size, n)]] = True
    if movable is not None:
      change &= np.asarray(movable, dtype=bool)
    step = rng.normal(0.0, radius, (n, d))
    if min_scale < 1.0:
      step *= np.exp(rng.uniform(np.log(min_scale), 0.0, (n, 1)))
    ordinal = self.kinds == ORDINAL
    # An ordinal move smaller than one cell would round back: step at least one cell.
    min_step = np.where(ordinal, 1.0 / self.sizes, 0.0)
    step = np.sign(step) * np.maximum(np.abs(step), min_step)
    moved = base + np.where(change, step, 0.0)
    cat = np.flatnonzero((self.kinds == CATEGORICAL) & (self.sizes > 1))
    if cat.size:
      size = self.sizes[cat]
      idx = np.floor(base[:, cat] * size)
      other = (idx + rng.integers(1, size, (n, cat.size))) % size  # never the same category
      moved[:, cat] = np.where(change[:, cat], (other + 0.5) / size, base[:, cat])
    return self.snap(moved)


def parameter_key(params: vz.ParameterDict | dict) -> tuple:
  """A hashable identity of a configuration: numbers compared to 9 significant digits (the
  service returns INTEGER values as floats), categories as strings."""
  items = params.items()
  out = []
  for name, value in sorted(items):
    v = value.value if isinstance(value, vz.ParameterValue) else value
    if isinstance(v, (bool, np.bool_)) or isinstance(v, str):
      out.append((name, str(v)))
    else:
      out.append((name, float(f'{float(v):.9g}')))
  return tuple(out)
