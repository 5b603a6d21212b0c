"""Which parameters a trial has in a (possibly conditional) Vizier search space.

In a conditional space a child parameter exists exactly when its parent's value selects it
(`parent.select_values([...]).add_float_param(...)`, any depth). OmniPred reads a trial as the
set of its active parameters, so nothing here needs a flattened space; Vizier's own
`SearchSpace.assert_contains` does not handle conditional spaces (NotImplementedError in
google-vizier 0.1.x), so the check is written here.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Mapping

import numpy as np
from vizier import pyvizier as vz
from vizier._src.pyvizier.shared.parameter_config import ParameterConfigSelector


def all_parameters(space: vz.SearchSpace) -> dict[str, vz.ParameterConfig]:
  """Every parameter of the space, children included, by name (configs without children)."""
  out = {}
  for root in space.parameters:
    for pc in root.traverse(show_children=False):
      if pc.name in out:
        raise ValueError(
            f'Parameter {pc.name!r} appears twice in the search space; OmniPred reads a trial'
            ' by parameter name, so each name must be unique across branches.')
      out[pc.name] = pc
  return out


def _same_value(a, b) -> bool:
  if isinstance(a, str) or isinstance(b, str):
    return str(a) == str(b)
  return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)


def _children(pc: vz.ParameterConfig, value) -> Iterator[vz.ParameterConfig]:
  """The child configs (with their own children) that `value` of `pc` selects: the
  parameters of its subspace for `value`. (Not `child_parameter_configs`, which deep-copies
  every child on each access: that was a quarter of building a pretraining batch.)"""
  for parent_value, subspace in pc.subspaces():
    if _same_value(value, parent_value):
      yield from subspace.parameters


_MISSING = object()  # a parent without a value activates none of its children


def _walk(space: vz.SearchSpace, value_of: Callable[[vz.ParameterConfig], object]
          ) -> Iterator[tuple[vz.ParameterConfig, object]]:
  """DFS over the active parameters: (config, value_of(config)); a parent's value decides
  which of its children come next."""
  stack = list(reversed(space.parameters))
  while stack:
    pc = stack.pop()
    value = value_of(pc)
    yield pc, value
    if value is not _MISSING:
      stack.extend(reversed(list(_children(pc, value))))


def active_configs(space: vz.SearchSpace, parameters: Mapping[str, object]
                   ) -> list[vz.ParameterConfig]:
  """The configs that are active given `parameters` (parents' values decide), in DFS order.
  A parent missing from `parameters` activates none of its children."""
  return [pc for pc, _ in _walk(space, lambda pc: parameters.get(pc.name, _MISSING))]


def is_valid(space: vz.SearchSpace, parameters: Mapping[str, object]) -> bool:
  """`check_parameters` as a yes/no."""
  try:
    check_parameters(space, parameters)
    return True
  except (ValueError, TypeError):
    return False


def check_parameters(space: vz.SearchSpace, parameters: Mapping[str, object], *,
                     check_bounds: bool = True, partial: bool = False) -> None:
  """Raises ValueError naming the first culprit: an active parameter missing, a category or
  discrete value not in its list, a number out of bounds (unless `check_bounds` is False: a
  regressor may be asked to extrapolate), a non-finite number, or a parameter that is not
  active (unknown, or its parent selects another branch). Flat and conditional spaces.

  `partial`: a trial may hold any subset of the space's parameters (a define-by-run space,
  Optuna's, where only the trial itself says which parameters it has); the ones it holds are
  checked as above."""
  parameters = {k: (v.value if isinstance(v, vz.ParameterValue) else v)
                for k, v in parameters.items()}
  active = active_configs(space, parameters)
  names = {pc.name for pc in active}
  for pc in active:
    if pc.name not in parameters:
      if partial:
        continue
      raise ValueError(f'parameter {pc.name!r} is missing (active here: {sorted(names)}).')
    value = parameters[pc.name]
    if pc.type != vz.ParameterType.CATEGORICAL:
      if isinstance(value, (str, bool, np.bool_)):
        raise ValueError(f'parameter {pc.name!r} is numeric but got {value!r}.')
      if not math.isfinite(float(value)):
        raise ValueError(f'parameter {pc.name!r} is {value!r}; numbers must be finite.')
    if pc.type in (vz.ParameterType.CATEGORICAL, vz.ParameterType.DISCRETE):
      if not any(_same_value(value, v) for v in pc.feasible_values):
        raise ValueError(f'parameter {pc.name!r} has value {value!r}, which is not one of its'
                         f' feasible values {pc.feasible_values}.')
    elif check_bounds and not pc.contains(value):
      raise ValueError(f'parameter {pc.name!r} has value {value!r}, outside its bounds'
                       f' {pc.bounds}.')
  extra = sorted(set(parameters) - names)
  if extra:
    known = all_parameters(space)
    if extra[0] in known:
      raise ValueError(
          f'parameter {extra[0]!r} is set, but its parent does not select it here (it is active'
          f' only when its parent takes one of {list(known[extra[0]].matching_parent_values)}).')
    raise ValueError(f'parameter {extra[0]!r} is not in the search space ({sorted(known)}).')


def build_parameters(space: vz.SearchSpace, value_of: Callable[[vz.ParameterConfig], object]
                     ) -> dict[str, object]:
  """A valid configuration whose values `value_of(config)` gives, asked only of the active
  parameters (a parent's value decides which children are asked), in DFS order."""
  return {pc.name: value for pc, value in _walk(space, value_of)}


def random_parameters(space: vz.SearchSpace, rng: np.random.Generator) -> dict[str, object]:
  """One valid configuration, uniform per parameter (log-uniform on LOG scale)."""
  return build_parameters(space, lambda pc: random_value(pc, rng))


def random_value(pc: vz.ParameterConfig, rng: np.random.Generator):
  """A uniform draw of one parameter's value (log-uniform where its scale is LOG)."""
  if pc.type in (vz.ParameterType.CATEGORICAL, vz.ParameterType.DISCRETE):
    return pc.feasible_values[int(rng.integers(len(pc.feasible_values)))]
  lo, hi = pc.bounds
  if pc.type == vz.ParameterType.INTEGER:
    return int(rng.integers(int(lo), int(hi) + 1))
  if pc.scale_type == vz.ScaleType.LOG and lo > 0:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
  return float(rng.uniform(lo, hi))


def add_parameter(selector: vz.SearchSpaceSelector, pc: vz.ParameterConfig
                  ) -> ParameterConfigSelector:
  """Adds a copy of `pc` (children aside) under `selector` (the root, or a parent's
  `select_values(...)`); returns the selector of the new parameter, whose `select_values`
  adds its children."""
  if pc.type == vz.ParameterType.DOUBLE:
    return selector.add_float_param(pc.name, *pc.bounds, scale_type=pc.scale_type)
  if pc.type == vz.ParameterType.INTEGER:
    return selector.add_int_param(pc.name, *pc.bounds, scale_type=pc.scale_type)
  if pc.type == vz.ParameterType.DISCRETE:
    return selector.add_discrete_param(pc.name, pc.feasible_values)
  if pc.type == vz.ParameterType.CATEGORICAL:
    return selector.add_categorical_param(pc.name, pc.feasible_values)
  raise ValueError(f'parameter {pc.name!r} has type {pc.type}, which OmniPred does not read.')
