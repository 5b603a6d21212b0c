"""How the designer maximises its acquisition: rank one pool, or search beyond it.

The designer takes an `AcquisitionOptimizer` (`OmniPredDesignerConfig.optimizer`), as
Vizier's GP designer takes its acquisition optimiser. `RankPool` (the default) hands the
pool on to be sampled and scored whole. `EvolutionarySearch` evolves it first.

Scoring a candidate cheaply costs little more than encoding it against the study (one exact
quantile decoded down the token tree: ~0.5 ms per candidate at 40 trials here, against
~1.7 ms for 16 samples). So the pool is the first generation of an evolutionary search:
the best candidates by the cheap inner score are the parents of the next generation (local
moves: continuous and ordinal coordinates by a normal step, categorical ones to another
category; the step shrinks each generation), and only the finalists are sampled in full
for the real acquisition. The parents of the last search seed the next suggestion's first
generation, re-scored under the grown context.
"""

from __future__ import annotations

from typing import Callable, Protocol

import attrs
import numpy as np

from designers.candidates import CONTINUOUS, CandidateSpace

# unit [n, d] -> inner scores [n] (larger is better; -inf: never a finalist).
InnerScore = Callable[[np.ndarray], np.ndarray]
# (unit [n, d], level) -> the surrogate's exact `level` quantile of each candidate, oriented
# (larger is better; -inf where the designer rules a candidate out).
QuantileScore = Callable[[np.ndarray, float], np.ndarray]


@attrs.frozen
class AcquisitionSearchConfig:
  """The search's sizes. Evaluations per suggestion: the pool, plus `generations` x
  `children`, plus the carried-over parents; `finalists` of them are sampled in full."""

  generations: int = attrs.field(default=3, kw_only=True, validator=attrs.validators.ge(0))
  children: int = attrs.field(default=256, kw_only=True, validator=attrs.validators.ge(1))
  parents: int = attrs.field(default=16, kw_only=True, validator=attrs.validators.ge(1))
  finalists: int = attrs.field(default=64, kw_only=True, validator=attrs.validators.ge(1))
  # The inner score: this upper quantile of the surrogate's predictive distribution (exact).
  inner_level: float = attrs.field(default=0.9, kw_only=True)
  # Each generation's step is this share of the one before (the first: the trust region's).
  shrink: float = attrs.field(default=0.5, kw_only=True)
  # Which coordinates the search moves: None, every one; 'continuous', the DOUBLE parameters
  # only (the integer, discrete and categorical choices stay the pool's, and a space without
  # a DOUBLE parameter has its pool ranked).
  moves: str | None = attrs.field(
      default=None, kw_only=True,
      validator=attrs.validators.optional(attrs.validators.in_(('continuous',))))

  @inner_level.validator
  def _check_level(self, attribute, value):
    del attribute
    if not 0.0 < value < 1.0:
      raise ValueError(f'inner_level must be in (0, 1), got {value}.')


@attrs.frozen
class SearchResult:
  """The finalists [f, d] (best inner score first), their inner scores, and how many
  candidates were scored."""

  finalists: np.ndarray
  inner: np.ndarray
  evaluated: int


def search(space: CandidateSpace, pool: np.ndarray, inner_score: InnerScore, *, radius: float,
           rng: np.random.Generator, config: AcquisitionSearchConfig,
           carried: np.ndarray | None = None) -> SearchResult:
  """Evolves `pool` [n, d] (plus `carried` parents of the last search) under `inner_score`."""
  population = pool if carried is None or not len(carried) else np.concatenate([carried, pool])
  population = _unique_rows(space.snap(population))
  scores = inner_score(population)
  evaluated = len(population)
  step = radius
  movable = movable_axes(space, config)
  for _ in range(config.generations):
    top = np.argsort(-scores, kind='stable')[:config.parents]
    top = top[np.isfinite(scores[top])]
    if not len(top):
      break
    children = _unique_rows(space.local(population[top], config.children, step, rng,
                                        movable=movable))
    children = children[~_rows_in(children, population)]
    if len(children):
      population = np.concatenate([population, children])
      scores = np.concatenate([scores, inner_score(children)])
      evaluated += len(children)
    step *= config.shrink
  order = np.argsort(-scores, kind='stable')[:config.finalists]
  return SearchResult(population[order], scores[order], evaluated)


def movable_axes(space: CandidateSpace, config: AcquisitionSearchConfig) -> np.ndarray | None:
  """[d] the coordinates `config.moves` lets the search move (None: every one)."""
  if config.moves is None:
    return None
  return space.kinds == CONTINUOUS


def _unique_rows(unit: np.ndarray) -> np.ndarray:
  _, first = np.unique(np.round(unit, 12), axis=0, return_index=True)
  return unit[np.sort(first)]


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
  """[len(rows)] True where a row equals a row of `table`."""
  seen = {r.tobytes() for r in np.round(table, 12)}
  return np.asarray([r.tobytes() in seen for r in np.round(rows, 12)], dtype=bool)


@attrs.frozen
class Proposal:
  """The candidates [n, d] to sample in full and score, how many candidates the optimiser
  scored on the way, and the population to carry into the next suggestion's search."""

  candidates: np.ndarray
  evaluated: int
  carried: np.ndarray


class AcquisitionOptimizer(Protocol):
  """pool [n, d] (+ a cheap exact-quantile score, None where the problem has none) ->
  the candidates the acquisition scores."""

  name: str

  def propose(self, space: CandidateSpace, pool: np.ndarray,
              quantile_score: QuantileScore | None, *, radius: float, rng: np.random.Generator,
              min_candidates: int, carried: np.ndarray) -> Proposal:
    ...


@attrs.frozen
class RankPool:
  """The pool itself: every candidate is sampled in full and scored."""

  name = 'pool'

  def propose(self, space, pool, quantile_score, *, radius, rng, min_candidates,
              carried) -> Proposal:
    del space, quantile_score, radius, rng, min_candidates
    return Proposal(pool, 0, carried)


@attrs.frozen
class EvolutionarySearch:
  """`search` under the surrogate's exact `config.inner_level` quantile; at least
  `min_candidates` finalists. Without a quantile score (several objectives, SAFETY metrics),
  or without a coordinate it may move, it ranks the pool."""

  config: AcquisitionSearchConfig = attrs.field(factory=AcquisitionSearchConfig)
  name = 'search'

  def propose(self, space, pool, quantile_score, *, radius, rng, min_candidates,
              carried) -> Proposal:
    movable = movable_axes(space, self.config)
    if quantile_score is None or (movable is not None and not movable.any()):
      return Proposal(pool, 0, carried)
    config = attrs.evolve(self.config, finalists=max(self.config.finalists, min_candidates))
    level = config.inner_level
    found = search(space, pool, lambda unit: quantile_score(unit, level), radius=radius,
                   rng=rng, config=config, carried=carried)
    return Proposal(found.finalists, found.evaluated, found.finalists[:config.parents])
