"""Random functions from a Gaussian-process prior, drawn jointly at a study's points.

The reference is the HEBO prior of PFNs4BO (Mueller et al. 2023): ARD kernels whose length
scales spread over orders of magnitude, an output scale, observation noise from none to heavy,
dimensions the function ignores, and per-dimension input warping. A function is never built as
a whole: its values at the n points a study needs are one draw from N(0, K + noise), via a
Cholesky factor (n <= ~200 here, a few milliseconds).

Points live in the unit cube (the corpus maps every parameter onto [0, 1] first).
"""

from __future__ import annotations

import attrs
import numpy as np

KERNELS = ('matern12', 'matern32', 'matern52', 'rbf')


@attrs.frozen
class GPPriorConfig:
  """The hyperprior: every draw of a study picks its own kernel and hyperparameters."""

  # log-uniform range of the ARD length scales, in unit-cube units
  min_length_scale: float = attrs.field(default=0.05, kw_only=True)
  max_length_scale: float = attrs.field(default=2.0, kw_only=True)
  # Length scales times dim ** this. 0: the same range at every dimension, so a draw in 8-D
  # varies along any line about as fast as in 1-D but is far less smooth overall, and from
  # 4-D on most draws cannot be learnt from 30 points. 0.5 is the sqrt(d) scaling of Hvarfner
  # et al. 2024 ("Vanilla Bayesian optimization performs great in high dimensions").
  length_scale_dim_exponent: float = attrs.field(default=0.0, kw_only=True)
  unused_dim_probability: float = attrs.field(default=0.2, kw_only=True)
  # Share of draws that depend on a few of their dimensions only (1 to half of them, the rest
  # unused), as tuning studies often do: with 0.2 unused per dimension alone, a 4-D draw with
  # one dimension that matters is 1 in 40, and the shipped model cannot find that dimension in
  # context (y = sin(2 x0) among 4 parameters, 30 points: error 0.26, the training median's
  # 0.28, against 0.006 with x0 alone; `tests/test_relevance.py` keeps x0 alone there now). 0 draws nothing for it, so the
  # studies of every seed stay those of the shipped stages.
  sparse_relevance_probability: float = attrs.field(default=0.0, kw_only=True)
  noiseless_probability: float = attrs.field(default=0.4, kw_only=True)
  # log-uniform noise variance, relative to the output variance
  min_noise: float = attrs.field(default=1e-4, kw_only=True)
  max_noise: float = attrs.field(default=0.5, kw_only=True)
  input_warp_probability: float = attrs.field(default=0.3, kw_only=True)
  jitter: float = attrs.field(default=1e-6, kw_only=True)  # keeps K positive definite


@attrs.frozen
class GPFunction:
  """One study's GP hyperparameters; `sample(u, rng)` draws its values at points u [n, d]."""

  kernel: str
  length_scales: np.ndarray  # [d]; inf where the function ignores a dimension
  noise: float  # variance relative to an output variance of 1
  warp_a: np.ndarray | None  # [d] Kumaraswamy warp parameters, or None
  warp_b: np.ndarray | None
  jitter: float

  @classmethod
  def draw(cls, dim: int, rng: np.random.Generator,
           config: GPPriorConfig = GPPriorConfig()) -> 'GPFunction':
    kernel = str(rng.choice(KERNELS))
    scales = np.exp(rng.uniform(np.log(config.min_length_scale), np.log(config.max_length_scale),
                                dim)) * float(dim) ** config.length_scale_dim_exponent
    unused = rng.random(dim) < config.unused_dim_probability
    sparse = config.sparse_relevance_probability
    if sparse > 0 and rng.random() < sparse:
      relevant = rng.choice(dim, size=int(rng.integers(1, max(1, dim // 2) + 1)), replace=False)
      unused = np.ones(dim, dtype=bool)
      unused[relevant] = False
    if unused.all():  # a study whose every parameter is ignored teaches nothing
      unused[rng.integers(dim)] = False
    scales = np.where(unused, np.inf, scales)
    noise = 0.0
    if rng.random() >= config.noiseless_probability:
      noise = float(np.exp(rng.uniform(np.log(config.min_noise), np.log(config.max_noise))))
    warp_a = warp_b = None
    if rng.random() < config.input_warp_probability:
      warp_a = np.exp(rng.normal(0.0, 0.75, dim))
      warp_b = np.exp(rng.normal(0.0, 0.75, dim))
    return cls(kernel=kernel, length_scales=scales, noise=noise, warp_a=warp_a, warp_b=warp_b,
               jitter=config.jitter)

  def _warp(self, u: np.ndarray) -> np.ndarray:
    if self.warp_a is None:
      return u
    u = np.clip(u, 0.0, 1.0)
    return 1.0 - (1.0 - u ** self.warp_a) ** self.warp_b  # Kumaraswamy CDF per dimension

  def covariance(self, u: np.ndarray) -> np.ndarray:
    """Noise-free kernel matrix [n, n] of the points u [n, d] (unit output variance)."""
    x = self._warp(np.asarray(u, np.float64)) / self.length_scales
    sq = np.sum(x * x, axis=1)
    r2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    if self.kernel == 'rbf':
      return np.exp(-0.5 * r2)
    r = np.sqrt(r2)
    if self.kernel == 'matern12':
      return np.exp(-r)
    if self.kernel == 'matern32':
      s = np.sqrt(3.0) * r
      return (1.0 + s) * np.exp(-s)
    s = np.sqrt(5.0) * r
    return (1.0 + s + s * s / 3.0) * np.exp(-s)

  def sample(self, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """-> [n] one joint draw of f(u) + noise (unit output variance)."""
    k = self.covariance(u)
    n = len(k)
    eps = rng.standard_normal(n)
    try:
      f = np.linalg.cholesky(k + self.jitter * np.eye(n)) @ eps
    except np.linalg.LinAlgError:  # repeated points of a smooth kernel: factor by eigenvalues
      w, v = np.linalg.eigh(k)
      f = v @ (np.sqrt(np.clip(w, 0.0, None)) * eps)
    if self.noise > 0:
      f = f + np.sqrt(self.noise) * rng.standard_normal(n)
    return f
