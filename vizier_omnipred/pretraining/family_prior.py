"""Families of related studies, for pretraining a model that reads the user's other studies.

A family is one latent objective (a flat `corpus.SyntheticStudy`) seen as several studies: the
current one, and 0 to `max_prior_studies` prior studies of 10-100 trials. A related prior study
is the same function changed the way a user's studies of one training script differ: its
optimum moved, its output transformed (the study's own affine map, and sometimes a monotone
warp), other noise, a parameter it did not tune (held at one value) or one more parameter
(a small effect), other ranges (its trials in a sub-box). An unrelated prior study is an
independent function, over the same parameter names or over another study's parameters, so the
model must learn when to ignore what it reads. Every related study's points are evaluated in
one call of the latent function (a GP part is a joint draw), so they share the function.

`relation` forces every prior study of a family to be 'related' or 'unrelated' (or 'none': no
prior studies): the held-out table compares the three on the same current trials.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred.pretraining.corpus import CorpusConfig, SyntheticStudy, draw_coordinate
from vizier_omnipred.pretraining.gp_prior import GPFunction

RELATIONS = ('mixed', 'related', 'unrelated', 'none')


@attrs.frozen
class FamilyConfig:
  """What a family of studies looks like."""

  max_prior_studies: int = attrs.field(default=3, kw_only=True)
  min_prior_trials: int = attrs.field(default=10, kw_only=True)
  max_prior_trials: int = attrs.field(default=100, kw_only=True)
  # Of prior studies. 0.5 (`pretrain --unrelated-fraction`) taught the shipped transfer model to
  # lean less on every prior study, related ones too, and lost in the designer (docs/design.md).
  unrelated_fraction: float = attrs.field(
      default=0.25, kw_only=True, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
  # Of unrelated prior studies: share over another study's parameters (else the same names).
  foreign_fraction: float = attrs.field(default=0.5, kw_only=True)
  # A related prior study's changes, each with its probability.
  shift_fraction: float = attrs.field(default=0.5, kw_only=True)
  shift_scale: float = attrs.field(default=1.5, kw_only=True)  # z units, on [-5, 5]
  warp_fraction: float = attrs.field(default=0.3, kw_only=True)
  noise_fraction: float = attrs.field(default=0.3, kw_only=True)
  drop_fraction: float = attrs.field(default=0.2, kw_only=True)
  add_fraction: float = attrs.field(default=0.2, kw_only=True)
  range_fraction: float = attrs.field(default=0.3, kw_only=True)


@attrs.frozen
class _Relation:
  related: bool
  foreign: SyntheticStudy | None = None  # unrelated, over another study's parameters
  shift: np.ndarray | None = None  # moved optimum, z units
  warp: float | None = None  # y -> sign-preserving power of its normalised value
  noise: float = 0.0  # std as a share of the study's y spread
  dropped: int | None = None  # coordinate the prior study held fixed
  dropped_z: float = 0.0
  added_effect: float | None = None  # an extra parameter's share of the y spread
  box: tuple[np.ndarray, np.ndarray] | None = None  # z sub-box of its trials


class StudyFamily:
  """One latent study and its prior studies (see the module doc)."""

  def __init__(self, seed: int, corpus: CorpusConfig, config: FamilyConfig = FamilyConfig(), *,
               split: str = 'train', relation: str = 'mixed', num_priors: int | None = None):
    if relation not in RELATIONS:
      raise ValueError(f'relation must be one of {RELATIONS}, got {relation!r}.')
    self.seed = seed
    self.current = SyntheticStudy(seed, corpus, split=split)
    self._corpus, self._config, self._split = corpus, config, split
    rng = np.random.default_rng([seed, 11])
    k = int(rng.integers(0, config.max_prior_studies + 1)) if num_priors is None else num_priors
    k = 0 if relation == 'none' else k
    # An added parameter (one name per family, as a user's next sweep would add it).
    self._extra = draw_coordinate(rng, self.current.dim, set(self.current.parameter_names))
    self.relations: list[_Relation] = []  # drawn one by one: a foreign study's names are taken
    for _ in range(k):
      self.relations.append(self._relation(rng, relation))

  def _relation(self, rng: np.random.Generator, relation: str) -> _Relation:
    cfg, d = self._config, self.current.dim
    related = (rng.random() >= cfg.unrelated_fraction) if relation == 'mixed' else (
        relation == 'related')
    if not related:
      return _Relation(related=False, foreign=(self._foreign(rng) if rng.random()
                                               < cfg.foreign_fraction else None))
    shift = rng.normal(0, cfg.shift_scale, d) if rng.random() < cfg.shift_fraction else None
    warp = float(np.exp(rng.uniform(-1, 1))) if rng.random() < cfg.warp_fraction else None
    noise = float(rng.uniform(0.01, 0.2)) if rng.random() < cfg.noise_fraction else 0.0
    dropped = (int(rng.integers(0, d)) if d > 1 and rng.random() < cfg.drop_fraction else None)
    added = float(rng.uniform(0, 0.3)) if rng.random() < cfg.add_fraction else None
    box = None
    if rng.random() < cfg.range_fraction:
      width = rng.uniform(4, 10, d)
      lo = rng.uniform(-5, 5 - width)
      box = (lo, lo + width)
    return _Relation(related=True, shift=shift, warp=warp, noise=noise, dropped=dropped,
                     dropped_z=float(rng.uniform(-5, 5)), added_effect=added, box=box)

  def _foreign(self, rng: np.random.Generator) -> SyntheticStudy | None:
    """Another study whose parameter names are all new to this family (None if ten draws
    could not find one: the prior study then keeps the family's names)."""
    taken = set(self.current.parameter_names) | {self._extra.config.name}
    for rel in self.relations:
      if rel.foreign is not None:
        taken |= set(rel.foreign.parameter_names)
    for _ in range(10):
      other = SyntheticStudy(int(rng.integers(0, 2**31 - 1)), self._corpus, split=self._split)
      if not taken & set(other.parameter_names):
        return other
    return None

  @property
  def problem(self) -> vz.ProblemStatement:
    """The current study's problem plus every parameter a prior study may have (the added
    one, an unrelated study's own): the union of the family's parameters (rows hold subsets
    of them)."""
    problem = vz.ProblemStatement()
    specs = self.current.coordinate_specs + [self._extra]
    for rel in self.relations:
      if rel.foreign is not None:
        specs += rel.foreign.coordinate_specs
    for c in specs:
      problem.search_space.add(c.config)
    problem.metric_information = self.current.problem.metric_information
    problem.metadata.attach(self.current.problem.metadata)
    return problem

  def _prior_points(self, rel: _Relation, n: int, rng: np.random.Generator
                    ) -> tuple[list[dict], np.ndarray]:
    """A related prior study's rows and the coordinates the latent function reads there."""
    specs = self.current.coordinate_specs
    if rel.box is None:
      rows = self.current.sample_parameters(n, rng)
    else:
      z = rng.uniform(rel.box[0], rel.box[1], (n, len(specs)))
      rows = [{c.config.name: c.from_z(zi) for c, zi in zip(specs, row)} for row in z]
    z = self.current.coordinates(rows)
    if rel.dropped is not None:
      z[:, rel.dropped] = rel.dropped_z
      for row in rows:
        del row[specs[rel.dropped].config.name]
    if rel.shift is not None:
      z = z - rel.shift  # its optimum sits at the current one's plus the shift
    return rows, z

  def draw(self, num_current: int, rng: np.random.Generator,
           prior_sizes: Sequence[int] | None = None
           ) -> list[tuple[list[dict], np.ndarray]]:
    """[(rows, y)] for the current study (`num_current` trials) then each prior study;
    `prior_sizes`: each prior study's trials (default: uniform in the config's range)."""
    cfg = self._config
    if prior_sizes is None:
      prior_sizes = [int(rng.integers(cfg.min_prior_trials, cfg.max_prior_trials + 1))
                     for _ in self.relations]
    current_rows = self.current.sample_parameters(num_current, rng)
    points = [(current_rows, self.current.coordinates(current_rows))]
    related = [i for i, r in enumerate(self.relations) if r.related]
    for i in related:
      points.append(self._prior_points(self.relations[i], prior_sizes[i], rng))
    raw = self.current.latent(np.concatenate([z for _, z in points]), rng)  # one function
    bounds = np.cumsum([0] + [len(z) for _, z in points])
    studies = {-1: (points[0][0], self.current.metric(raw[:bounds[1]]))}
    for j, i in enumerate(related, start=1):
      rows, part = points[j][0], raw[bounds[j]:bounds[j + 1]]
      studies[i] = self._related_output(self.relations[i], rows, part, rng)
    for i, rel in enumerate(self.relations):
      if not rel.related:
        studies[i] = self._unrelated(rel, prior_sizes[i], rng)
    return [studies[-1]] + [studies[i] for i in range(len(self.relations))]

  def _related_output(self, rel: _Relation, rows: list[dict], raw: np.ndarray,
                      rng: np.random.Generator) -> tuple[list[dict], np.ndarray]:
    spread = float(np.std(raw)) or 1.0
    if rel.added_effect is not None:
      extra = self._extra
      values = [extra.sample(rng) for _ in rows]
      for row, v in zip(rows, values):
        row[extra.config.name] = v
      u = (np.asarray([extra.to_z(v) for v in values]) + 5.0) / 10.0
      raw = raw + rel.added_effect * spread * (u - 0.5)
    if rel.noise:
      raw = raw + rng.normal(0, rel.noise * spread, len(raw))
    y = self.current.metric(raw)
    if rel.warp is not None:  # a monotone map of the study's own normalised values
      lo, hi = float(y.min()), float(y.max())
      if hi > lo:
        y = lo + (hi - lo) * ((y - lo) / (hi - lo)) ** rel.warp
    return rows, y

  def _unrelated(self, rel: _Relation, n: int, rng: np.random.Generator
                 ) -> tuple[list[dict], np.ndarray]:
    if rel.foreign is not None:  # another study altogether
      return rel.foreign.draw(n, rng)
    rows = self.current.sample_parameters(n, rng)
    z = self.current.coordinates(rows)
    gp = GPFunction.draw(self.current.dim, rng, self._corpus.gp)  # an independent function
    return rows, self.current.metric(gp.sample((z + 5.0) / 10.0, rng))
