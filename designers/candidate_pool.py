"""Where a suggestion's candidates come from, and the rules that steer them.

The pool: Halton points plus trust-region moves around the best trials (several objectives:
around Pareto-optimal trials; a conditional space: around the best trial of every branch too).
The rules: a local context that zooms in on the incumbent, and a share of suggestions that go
to the least-tried branch of a conditional space.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from vizier import pyvizier as vz

from designers import hypervolume
from designers.candidates import CandidateSpace

# Conditional spaces: this share of model-phase suggestions is the best candidate of the branch
# (set of active parameters) with the fewest completed trials, so that a branch whose first
# trials were poor still gets tried where the model likes it best.
BRANCH_EXPLORATION_SHARE = 0.2


def centres(pairs: Sequence[tuple[vz.Trial, np.ndarray]], num_centres: int,
            rng: np.random.Generator) -> list[vz.Trial]:
  """The trials to move around: the `num_centres` best (several objectives: Pareto-optimal
  ones in random order), then the best trial of every branch not yet among them, so that a
  branch whose children are still untuned is not abandoned to the first that looked good."""
  if not pairs:
    return []
  if len(pairs[0][1]) == 1:
    pairs = sorted(pairs, key=lambda p: -p[1][0])
  else:
    on_front = hypervolume.pareto_mask(np.asarray([v for _, v in pairs]))
    pairs = [pairs[i] for i in rng.permutation(np.flatnonzero(on_front))]
  out = [t for t, _ in pairs[:num_centres]]
  branches = {frozenset(t.parameters) for t in out}
  for t, _ in pairs[num_centres:]:
    if frozenset(t.parameters) not in branches:
      branches.add(frozenset(t.parameters))
      out.append(t)
  return out


def pool(space: CandidateSpace, around: Sequence[vz.Trial], n: int, *, local_fraction: float,
         radius: float, rng: np.random.Generator, min_scale: float = 1.0,
         also: np.ndarray | None = None) -> np.ndarray:
  """[n, d] unit-cube candidates: `local_fraction` of them moves within `radius` of the
  trials `around` (see `CandidateSpace.local` for `min_scale`), the rest quasi-random.
  `also` [k, d]: points from elsewhere (prior studies' best), first in the pool themselves
  and centres after `around`'s."""
  also = np.zeros((0, space.dim)) if also is None else also
  n_local = int(round(n * local_fraction))
  centres = np.concatenate([space.to_unit(around), also])
  return np.concatenate([also, space.local(centres, n_local, radius, rng, min_scale=min_scale),
                         space.quasi_random(max(0, n - n_local - len(also)))])


def local_trials(space: CandidateSpace, pairs: Sequence[tuple[vz.Trial, np.ndarray]],
                 size: int | None, share: float, rng: np.random.Generator) -> set[int] | None:
  """One objective: with probability `share`, once more than `size` trials are feasible, the
  ids of the `size` trials nearest (unit cube) the best one, itself included: a local context
  for this suggestion. Else None (every trial)."""
  if size is None or len(pairs) <= size or rng.random() >= share:
    return None
  unit = space.to_unit([t for t, _ in pairs])
  best = int(np.argmax([v[0] for _, v in pairs]))
  nearest = np.argsort(((unit - unit[best]) ** 2).sum(axis=1), kind='stable')
  return {pairs[i][0].id for i in nearest[:size]}


def least_tried_branch(params: Sequence[vz.ParameterDict], scores: np.ndarray,
                       completed: Sequence[vz.Trial]) -> np.ndarray:
  """scores, -inf outside the candidates' branch with the fewest completed trials."""
  branch = [frozenset(p) for p in params]
  tried: dict[frozenset, int] = {}
  for t in completed:
    key = frozenset(t.parameters)
    tried[key] = tried.get(key, 0) + 1
  target = min(set(branch), key=lambda b: (tried.get(b, 0), sorted(b)))
  return np.where([b == target for b in branch], scores, -np.inf)
