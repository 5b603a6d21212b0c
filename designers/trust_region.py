"""The radius of the local moves around the best trials.

Held at `initial_radius` by default; with `adaptive=True` it follows TuRBO's rule (grows after
repeated improvements, shrinks after stalls, restarts when it collapses).
"""

from __future__ import annotations

import attrs


@attrs.frozen
class TrustRegionConfig:
  initial_radius: float = attrs.field(default=0.15, kw_only=True)  # in unit (scaled) space
  # Off: a fixed radius beat TuRBO's adaptation on BBOB (seeds 0 and 1) and on the tuning
  # benchmark (docs/design.md, "The trust region's radius stays fixed").
  adaptive: bool = attrs.field(default=False, kw_only=True)
  # Each local move's radius is `radius` times a scale drawn log-uniformly from
  # [min_scale, 1], so that some moves probe the incumbent's close neighbourhood. 1 (the
  # default): every move at `radius`; 1/30 raised BBOB seed-0 regret 0.035 -> 0.047 (the model
  # cannot rank moves that small: docs/design.md, "Why OmniPred stalls on smooth functions").
  min_scale: float = attrs.field(default=1.0, kw_only=True,
                                 validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)])
  min_radius: float = attrs.field(default=0.005, kw_only=True)
  max_radius: float = attrs.field(default=0.5, kw_only=True)
  success_tolerance: int = attrs.field(default=2, kw_only=True)
  failure_tolerance: int = attrs.field(default=4, kw_only=True)


@attrs.define
class TrustRegion:
  """Radius of the local moves around the best trials (see the module docstring)."""

  config: TrustRegionConfig = attrs.field(factory=TrustRegionConfig)
  radius: float = attrs.field(default=None)
  successes: int = 0
  failures: int = 0

  def __attrs_post_init__(self):
    if self.radius is None:
      self.radius = self.config.initial_radius

  def observe(self, improved: bool) -> None:
    """One batch of new results: did it beat the best so far?"""
    cfg = self.config
    if not cfg.adaptive:
      return
    if improved:
      self.successes, self.failures = self.successes + 1, 0
    else:
      self.successes, self.failures = 0, self.failures + 1
    if self.successes >= cfg.success_tolerance:
      self.radius, self.successes = min(cfg.max_radius, 2 * self.radius), 0
    elif self.failures >= cfg.failure_tolerance:
      self.radius, self.failures = self.radius / 2, 0
      if self.radius < cfg.min_radius:
        self.radius = cfg.initial_radius
