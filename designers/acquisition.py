"""Acquisition functions over sampled y values.

Every function takes samples [n_candidates, n_samples] oriented so that LARGER IS BETTER
(the designer flips minimisation metrics) and returns one score per candidate [n].
They are rank-only where they can be: the designer compares scores, never their units.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Acquisition = Callable[..., np.ndarray]


def ucb(samples: np.ndarray, *, quantile: float = 0.9, **_) -> np.ndarray:
  """Upper confidence bound as an upper quantile of the samples (no Gaussian assumption)."""
  return np.quantile(samples, quantile, axis=1)


def expected_improvement(samples: np.ndarray, *, best: float, **_) -> np.ndarray:
  """E[max(y - best, 0)] under the empirical sample distribution."""
  return np.maximum(samples - best, 0.0).mean(axis=1)


def probability_of_improvement(samples: np.ndarray, *, best: float, **_) -> np.ndarray:
  """P(y > best) under the empirical sample distribution."""
  return (samples > best).mean(axis=1)


def thompson(samples: np.ndarray, *, rng: np.random.Generator, **_) -> np.ndarray:
  """One posterior draw per candidate (a random column of its samples)."""
  cols = rng.integers(0, samples.shape[1], samples.shape[0])
  return samples[np.arange(samples.shape[0]), cols]


ACQUISITIONS: dict[str, Acquisition] = {
    'ucb': ucb,
    'ei': expected_improvement,
    'pi': probability_of_improvement,
    'thompson': thompson,
}


def score(name: str, samples: np.ndarray, *, best: float, rng: np.random.Generator,
          quantile: float = 0.9) -> np.ndarray:
  """Scores by `name`; ties (EI and PI are 0 far from the best) are broken by the median."""
  if name not in ACQUISITIONS:
    raise ValueError(f'Unknown acquisition {name!r}; choose one of {sorted(ACQUISITIONS)}.')
  if samples.ndim != 2 or samples.shape[1] < 1:
    raise ValueError(f'samples must be [n_candidates, n_samples], got shape {samples.shape}.')
  primary = ACQUISITIONS[name](samples, best=best, rng=rng, quantile=quantile)
  median = np.median(samples, axis=1)
  spread = np.ptp(median) or 1.0
  # Lexicographic: primary first; the median only orders candidates the primary ties.
  scale = np.ptp(primary) or 1.0
  return primary / scale + 1e-6 * (median - median.min()) / spread
