"""Acquisition functions: sampled y values of every candidate -> one score per candidate.

The designer takes one as a collaborator (`OmniPredDesignerConfig.acquisition`), as Vizier's
GP designer takes its acquisition function. An `Acquisition` reads samples [n, S, m] (n
candidates, S samples, m objectives) oriented and warped so that LARGER IS BETTER (the
designer flips minimisation metrics) and an `AcquisitionContext` (the values of the trials
the surrogate read, a random generator, the candidates' probability of being safe), and
returns scores [n]. The designer compares scores, never their units. Its `name` is what the
suggestions' metadata says was used.

One objective: `UCB` (the default), `ExpectedImprovement`, `ProbabilityOfImprovement`,
`Thompson`. Several: `ExpectedHypervolumeImprovement` (the default). SAFETY metrics: the
designer wraps either in `SafetyWeighted`. A new acquisition is one class with `name` and
`__call__`; nothing else in the designer changes.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import attrs
import numpy as np

from designers import hypervolume

# Ties of the primary score (EI and PI are 0 far from the best; EHVI where no sample improves
# the front) are broken by the candidates' summed medians, at this weight: below any
# difference of the primary score that is not a tie.
TIE_BREAK_WEIGHT = 1e-6
# SafetyWeighted: an unsafe-looking candidate keeps this share of its score, so candidates
# that all look unsafe are still ordered by the acquisition.
UNSAFE_FLOOR = 1e-3


@attrs.frozen
class AcquisitionContext:
  """What an acquisition may read beside the samples.

  observed: [k, m] oriented warped values of the trials the surrogate read (the safe ones
  when any is safe): the incumbent and the Pareto front. safe_probability: () -> [n] each
  candidate's probability of satisfying the SAFETY metrics, computed when first asked.
  """

  observed: np.ndarray
  rng: np.random.Generator
  safe_probability: Callable[[], np.ndarray] | None = None


@runtime_checkable
class Acquisition(Protocol):
  """samples [n, S, m] (larger is better) + context -> scores [n] (larger is better)."""

  name: str

  def __call__(self, samples: np.ndarray, context: AcquisitionContext) -> np.ndarray:
    ...


# --- the scores themselves, over one objective's samples [n, S] ---------------------------
def ucb(samples: np.ndarray, *, quantile: float = 0.9) -> np.ndarray:
  """Upper confidence bound as an upper quantile of the samples (no Gaussian assumption)."""
  return np.quantile(samples, quantile, axis=1)


def expected_improvement(samples: np.ndarray, *, best: float) -> np.ndarray:
  """E[max(y - best, 0)] under the empirical sample distribution."""
  return np.maximum(samples - best, 0.0).mean(axis=1)


def probability_of_improvement(samples: np.ndarray, *, best: float) -> np.ndarray:
  """P(y > best) under the empirical sample distribution."""
  return (samples > best).mean(axis=1)


def thompson(samples: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
  """One posterior draw per candidate (a random column of its samples)."""
  cols = rng.integers(0, samples.shape[1], samples.shape[0])
  return samples[np.arange(samples.shape[0]), cols]


def tie_broken(primary: np.ndarray, samples: np.ndarray) -> np.ndarray:
  """Lexicographic: `primary` [n] first; the summed medians of samples [n, S, m] order only
  the candidates whose primary scores tie."""
  median = np.median(samples, axis=1).sum(axis=1)
  return (primary / (np.ptp(primary) or 1.0)
          + TIE_BREAK_WEIGHT * (median - median.min()) / (np.ptp(median) or 1.0))


def _one_objective(samples: np.ndarray, name: str) -> np.ndarray:
  if samples.ndim != 3 or samples.shape[1] < 1:
    raise ValueError(f'samples must be [n_candidates, n_samples, n_objectives], got shape '
                     f'{samples.shape}.')
  if samples.shape[2] != 1:
    raise ValueError(f'{name} scores one objective; these samples have {samples.shape[2]}: '
                     'use ExpectedHypervolumeImprovement.')
  return samples[:, :, 0]


def _against_best(score: Callable[..., np.ndarray], what: str, samples: np.ndarray,
                  context: AcquisitionContext) -> np.ndarray:
  """`score(y, best=...)` of one objective's samples against the best value read."""
  y = _one_objective(samples, what)
  return tie_broken(score(y, best=float(context.observed.max())), samples)


# --- implementations -------------------------------------------------------------------
@attrs.frozen
class UCB:
  """The `quantile` upper quantile of each candidate's samples."""

  quantile: float = attrs.field(default=0.9, validator=attrs.validators.and_(
      attrs.validators.gt(0.0), attrs.validators.lt(1.0)))
  objectives = 1

  @property
  def name(self) -> str:
    return 'ucb' if self.quantile == 0.9 else f'ucb({self.quantile:g})'

  def __call__(self, samples: np.ndarray, context: AcquisitionContext) -> np.ndarray:
    return tie_broken(ucb(_one_objective(samples, 'UCB'), quantile=self.quantile), samples)


@attrs.frozen
class ExpectedImprovement:
  """E[max(y - best, 0)] over the samples; best: the best value the surrogate read."""

  name = 'ei'
  objectives = 1

  def __call__(self, samples: np.ndarray, context: AcquisitionContext) -> np.ndarray:
    return _against_best(expected_improvement, 'Expected improvement', samples, context)


@attrs.frozen
class ProbabilityOfImprovement:
  """P(y > best) over the samples."""

  name = 'pi'
  objectives = 1

  def __call__(self, samples: np.ndarray, context: AcquisitionContext) -> np.ndarray:
    return _against_best(probability_of_improvement, 'Probability of improvement', samples,
                         context)


@attrs.frozen
class Thompson:
  """One of each candidate's samples, drawn at random."""

  name = 'thompson'
  objectives = 1

  def __call__(self, samples: np.ndarray, context: AcquisitionContext) -> np.ndarray:
    return tie_broken(thompson(_one_objective(samples, 'Thompson sampling'), rng=context.rng),
                      samples)


@attrs.frozen
class ExpectedHypervolumeImprovement:
  """Mean hypervolume improvement of the samples over the observed Pareto front.

  The reference point sits `reference_margin` of each objective's observed range below its
  worst observed value (ranks: 0.1 below 0), so the front's extreme points still count.
  """

  reference_margin: float = attrs.field(default=0.1, validator=attrs.validators.ge(0.0))
  name = 'ehvi'
  objectives = None  # any number

  def __call__(self, samples: np.ndarray, context: AcquisitionContext) -> np.ndarray:
    observed = context.observed
    front = observed[hypervolume.pareto_mask(observed)]
    spread = np.ptp(observed, axis=0)
    ref = observed.min(axis=0) - self.reference_margin * np.where(spread > 0, spread, 1.0)
    gain = hypervolume.expected_improvement(samples, front, ref, rng=context.rng)
    return tie_broken(gain, samples)


@attrs.frozen
class SafetyWeighted:
  """`base`'s score scaled to [0, 1], times the candidate's probability of being safe."""

  base: Acquisition

  @property
  def name(self) -> str:
    return f'{self.base.name} x P(safe)'

  @property
  def objectives(self):
    return getattr(self.base, 'objectives', None)

  def __call__(self, samples: np.ndarray, context: AcquisitionContext) -> np.ndarray:
    scores = self.base(samples, context)
    if context.safe_probability is None:
      return scores
    unit_score = (scores - scores.min()) / (np.ptp(scores) or 1.0)
    return context.safe_probability() * unit_score + UNSAFE_FLOOR * unit_score


NAMED: dict[str, Callable[[], Acquisition]] = {
    'ucb': UCB,
    'ei': ExpectedImprovement,
    'pi': ProbabilityOfImprovement,
    'thompson': Thompson,
    'ehvi': ExpectedHypervolumeImprovement,
}


def resolve(value: Acquisition | str | None) -> Acquisition | None:
  """A config's acquisition: an instance, one of `NAMED`'s names, or None (the default for
  the number of objectives)."""
  if value is None or isinstance(value, Acquisition):
    return value
  if isinstance(value, str) and value in NAMED:
    return NAMED[value]()
  raise ValueError(f'Unknown acquisition {value!r}; pass an Acquisition or one of '
                   f'{sorted(NAMED)}.')


def for_problem(chosen: Acquisition | None, num_objectives: int,
                has_safety: bool) -> Acquisition:
  """The acquisition a designer uses: `chosen` (default: UCB for one objective, EHVI for
  several), weighted by P(safe) when the problem has SAFETY metrics."""
  acquisition = chosen or (UCB() if num_objectives == 1 else ExpectedHypervolumeImprovement())
  supported = getattr(acquisition, 'objectives', None)
  if supported is not None and supported != num_objectives:
    raise ValueError(f'Acquisition {acquisition.name!r} scores {supported} objective(s); this '
                     f'problem has {num_objectives}: use ExpectedHypervolumeImprovement.')
  return SafetyWeighted(acquisition) if has_safety else acquisition
