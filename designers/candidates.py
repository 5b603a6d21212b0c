"""The candidate pool: Vizier's converters map any flat search space to a unit cube.

Continuous parameters (DOUBLE, linear or log) become [0, 1] through Vizier's scaler;
INTEGER, DISCRETE and CATEGORICAL become indices, placed at (i + 0.5) / n in the cube so that
distances, Halton points and local moves work on one array. Converting back rounds to the
nearest feasible value (Vizier's converter does it), so every candidate is valid.
"""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
from scipy.stats import qmc
from vizier import pyvizier as vz
from vizier.pyvizier import converters

CONTINUOUS, ORDINAL, CATEGORICAL = 0, 1, 2


class CandidateSpace:
  """Unit-cube view of a flat search space: [n, d] arrays <-> Vizier parameters."""

  def __init__(self, search_space: vz.SearchSpace, *, seed: int = 0):
    if search_space.is_conditional:
      raise ValueError('OmniPredDesigner does not support conditional search spaces.')
    configs = list(search_space.parameters)
    if not configs:
      raise ValueError('OmniPredDesigner needs a search space with at least one parameter.')
    self._converter = converters.DefaultTrialConverter([
        converters.DefaultModelInputConverter(
            pc, scale=True, max_discrete_indices=sys.maxsize, float_dtype=np.float64)
        for pc in configs
    ])
    self._specs = list(self._converter.output_specs.values())
    self.names = [s.name for s in self._specs]
    by_name = {pc.name: pc for pc in configs}
    self.kinds = np.empty(len(self._specs), dtype=np.int64)
    self.sizes = np.ones(len(self._specs), dtype=np.int64)
    for j, spec in enumerate(self._specs):
      if spec.type == converters.NumpyArraySpecType.CONTINUOUS:
        self.kinds[j] = CONTINUOUS
      else:
        self.sizes[j] = int(spec.bounds[1] - spec.bounds[0] + 1 - spec.num_oovs)
        nominal = by_name[spec.name].type == vz.ParameterType.CATEGORICAL
        self.kinds[j] = CATEGORICAL if nominal else ORDINAL
    self._halton = qmc.Halton(d=self.dim, seed=seed)
    self._halton.fast_forward(1)  # the origin is a corner; the centre is suggested separately
    self.num_configurations = (
        float(np.prod(self.sizes.astype(float))) if np.all(self.kinds != CONTINUOUS) else np.inf
    )

  @property
  def dim(self) -> int:
    return len(self._specs)

  def to_unit(self, trials: Sequence[vz.TrialSuggestion]) -> np.ndarray:
    """Trials -> [n, d] points in the unit cube."""
    if not trials:
      return np.zeros((0, self.dim))
    feats = self._converter.to_features(list(trials))
    cols = []
    for j, name in enumerate(self.names):
      col = np.asarray(feats[name], dtype=np.float64)[:, 0]
      if self.kinds[j] != CONTINUOUS:
        col = (np.clip(col, 0, self.sizes[j] - 1) + 0.5) / self.sizes[j]
      cols.append(col)
    return np.clip(np.stack(cols, axis=1), 0.0, 1.0)

  def snap(self, unit: np.ndarray) -> np.ndarray:
    """Rounds discrete coordinates to their cell centres, clips to the cube."""
    unit = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)
    disc = self.kinds != CONTINUOUS
    idx = np.minimum(np.floor(unit[:, disc] * self.sizes[disc]), self.sizes[disc] - 1)
    unit[:, disc] = (idx + 0.5) / self.sizes[disc]
    return unit

  def to_parameters(self, unit: np.ndarray) -> list[vz.ParameterDict]:
    """[n, d] unit points -> feasible Vizier parameters."""
    unit = self.snap(unit)
    arrays = {}
    for j, name in enumerate(self.names):
      if self.kinds[j] == CONTINUOUS:
        arrays[name] = unit[:, j:j + 1]
      else:
        arrays[name] = np.floor(unit[:, j:j + 1] * self.sizes[j]).astype(np.int64)
    return list(self._converter.to_parameters(arrays))

  def centre(self) -> np.ndarray:
    return self.snap(np.full((1, self.dim), 0.5))

  def quasi_random(self, n: int) -> np.ndarray:
    """n Halton points (the sequence advances: successive calls give new points)."""
    return self.snap(self._halton.random(n)) if n > 0 else np.zeros((0, self.dim))

  def local(self, centres: np.ndarray, n: int, radius: float,
            rng: np.random.Generator) -> np.ndarray:
    """n moves around `centres` [k, d] (earlier centres are drawn more often).

    Each move changes a random subset of coordinates (about 3, at least 1): continuous and
    ordinal ones by N(0, radius) in the cube, categorical ones to a different category, drawn uniformly.
    """
    if n <= 0 or len(centres) == 0:
      return np.zeros((0, self.dim))
    k = len(centres)
    weights = 1.0 / np.arange(1, k + 1)
    base = centres[rng.choice(k, size=n, p=weights / weights.sum())]
    d = self.dim
    change = rng.random((n, d)) < min(1.0, 3.0 / d)
    change[np.arange(n), rng.integers(0, d, n)] = True
    step = rng.normal(0.0, radius, (n, d))
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
