"""`OmniPredDesignerConfig`: the designer's knobs, each default beside the measurement that
chose it (the surrogate has its own: `lm_surrogate.LMSurrogateConfig`)."""

from __future__ import annotations

import attrs

from designers.acquisition import UCB, Acquisition, resolve  # a field named `acquisition` below
from designers.acquisition_search import AcquisitionOptimizer, RankPool
from designers.quadratic_step import QuadraticStepConfig
from designers.trust_region import TrustRegionConfig
from designers.warping import WARPS
from vizier_omnipred.relevance import PRIORS_ONLY  # fields that act only with `set_priors`

# Fields that act only on one objective over continuous parameters (no safety metric, none
# conditional): a benchmark's run of another study does not record them (its signature).
CONTINUOUS_ONLY = {'continuous_only': True}



@attrs.frozen
class OmniPredDesignerConfig:
  """The designer's knobs (the surrogate has its own: `lm_surrogate.LMSurrogateConfig`)."""

  # One objective of several to optimise alone; None: every objective (several: EHVI).
  metric_name: str | None = attrs.field(default=None, kw_only=True)
  # Several objectives: True samples them jointly by the chain rule (objective k reads the
  # trials' values of the ones before it; LM surrogates only); False: each from the parameters
  # alone. Off by measurement (README, benchmarks/multi_objective.py, 3 seeds): independent
  # samples gave the higher hypervolume on ZDT1 (0.976 vs 0.968) and DTLZ2 (0.697 vs 0.585),
  # the chain only on the BBOB pair (0.992 vs 0.984), and it costs 2-3x the sampling time: a
  # candidate's sampled y1 carries the model's error into y2, and in the context y1 was exact.
  joint_objectives: bool = attrs.field(default=False, kw_only=True)
  num_seed_trials: int = attrs.field(default=5, kw_only=True)
  # With prior studies set (`set_priors`): each prior study's `num_prior_centres` best trials
  # join the pool, as points and as centres to move around (a prior study that shares no
  # parameter gives none), and model-based suggestions start after
  # `num_seed_trials_with_priors` feasible trials (None: `num_seed_trials`). By measurement
  # (docs/design.md, `python -m benchmarks.transfer`): the prior-best points lower regret on
  # related studies at 20 trials; starting sooner helps at 10 trials and costs at 20 (with the
  # pooled reading from 5 trials, `RelevanceConfig.pooled_from`, level at both).
  num_seed_trials_with_priors: int | None = attrs.field(default=None, kw_only=True,
                                                         metadata=PRIORS_ONLY)
  num_prior_centres: int = attrs.field(default=1, kw_only=True, metadata=PRIORS_ONLY)
  # With prior studies set: the seed trials begin with the prior studies' best points (those
  # `num_prior_centres` give) instead of the search space's centre. By measurement (same
  # benchmark): below the centre-first seeds on 59% of related studies at 10 and at 20 trials.
  seed_with_prior_best: bool = attrs.field(default=True, kw_only=True, metadata=PRIORS_ONLY)
  # With prior studies set: the quasi-random seed trials are drawn inside the box the prior
  # studies' best `seed_region_share` of their trials span (`seed_region.SeedRegion`;
  # Perrone et al. 2019); None: over the whole space. None by measurement (docs/design.md,
  # `benchmarks/results/transfer_region.md`, 16 related studies, seeds 0-2): the default is
  # below the box of the best 10% / 25% on 56% / 56% of the studies at 10 trials, 56% / 59% at
  # 20; neither turns a study where Vizier's GP with `set_priors` leads at 10 trials.
  seed_region_share: float | None = attrs.field(
      default=None, kw_only=True, metadata=PRIORS_ONLY,
      validator=attrs.validators.optional([attrs.validators.gt(0.0), attrs.validators.le(1.0)]))
  num_candidates: int = attrs.field(default=512, kw_only=True)
  local_fraction: float = attrs.field(default=0.6, kw_only=True)  # of the pool
  num_centres: int = attrs.field(default=3, kw_only=True)  # best trials to move around
  num_samples: int = attrs.field(default=16, kw_only=True)
  # An `acquisition.Acquisition` or its name ('ucb', 'ei', 'pi', 'thompson', 'ehvi'); None:
  # UCB (the 0.9 quantile) for one objective, EHVI for several (docs/design.md).
  acquisition: Acquisition | None = attrs.field(default=None, kw_only=True, converter=resolve)
  # With prior studies set (`set_priors`): the acquisition used instead (None: `acquisition`;
  # a one-objective acquisition on a study of several objectives: `acquisition` too). UCB at
  # the 0.6 quantile, less optimism than without priors, by measurement (docs/design.md,
  # `python -m benchmarks.transfer`, 16 related studies over ten seeds): regret at 10 / 20
  # trials below no priors on 84% / 75% of the studies, against the 0.75 quantile's 84% / 50%
  # and the 0.9's 69% / 50%; on the unrelated control (ten seeds) within the seeds' spread of
  # no priors on all 16 studies, at a higher mean at 20 trials than the 0.75 quantile's. The
  # median (`omnipred_priors_ucb50`, seeds 0-2 only) is lower at 20 trials, higher at 10.
  acquisition_with_priors: Acquisition | None = attrs.field(
      factory=lambda: UCB(quantile=0.6), kw_only=True, converter=resolve, metadata=PRIORS_ONLY)
  # With prior studies set: read them (in context, as seeds, in the pool, with
  # `acquisition_with_priors`) until the study has this many trials, then as without priors
  # (None: throughout). Off by measurement (docs/design.md, 16 related studies, ten seeds):
  # until 15 trials, the regret at 20 trials is below no priors on more studies (66% against
  # 50%) but higher on average (0.043 against 0.041), and it did not hold on fresh seeds.
  prior_studies_until: int | None = attrs.field(default=None, kw_only=True,
                                                metadata=PRIORS_ONLY)
  # 'auto': ranks in a flat space, the values themselves (an affine map) in a conditional one.
  # Measured (README): a conditional space's branches sit on their own levels, and ranks blow a
  # plateau's tiny differences (ridge's alpha at the 4th decimal) up to the whole range, so
  # the model kept refining it: affine y lowered regret on both conditional problems (5 seeds:
  # branches 0.0073 -> 0.0013, sklearn_family 0.0093 -> 0.0052) but raised it on the flat BBOB
  # studies, whose values span orders of magnitude (seed0 preset 0.041 -> 0.046).
  y_warp: str = attrs.field(default='auto', kw_only=True,
                            validator=attrs.validators.in_(WARPS + ('auto',)))
  trust_region: TrustRegionConfig = attrs.field(factory=TrustRegionConfig, kw_only=True)
  # How the acquisition is maximised (`acquisition_search`): rank the pool (the default), or
  # `EvolutionarySearch()` to evolve it under a cheap exact quantile first (one objective).
  optimizer: AcquisitionOptimizer = attrs.field(factory=RankPool, kw_only=True)
  # With prior studies set: the optimiser used instead (None: `optimizer`). None by
  # measurement (docs/design.md, `benchmarks/results/transfer_search.md`): searching under the
  # 0.6 quantile was level with the ranked pool at 10 trials on 16 related studies (50%),
  # behind at 20 (mean 0.049 against 0.035), at about 4x the time per trial; moving only the
  # DOUBLE parameters (`AcquisitionSearchConfig(moves='continuous')`) was no better.
  optimizer_with_priors: AcquisitionOptimizer | None = attrs.field(default=None, kw_only=True,
                                                                   metadata=PRIORS_ONLY)
  # One objective: once more than `local_context` trials are feasible, a suggestion (with
  # probability `local_share`) reads only the `local_context` trials nearest the best one and
  # proposes only moves around it. The model standardises parameters and y by its context,
  # so a local context zooms in on the incumbent. None: every suggestion reads every trial.
  local_context: int | None = attrs.field(default=None, kw_only=True)
  # One objective, every parameter continuous: on its turn, a local quadratic model's step
  # (`quadratic_step`) instead of the LM's suggestion, when its fit holds. None: the LM alone.
  # On by measurement (docs/design.md, `bbob_quadratic_pooled.md`, 16 BBOB pairs x 8 seeds):
  # mean regret at 50 trials 0.026 against the LM alone's 0.031 (0.025 against 0.030 on the
  # seeds its settings were not chosen on), within 10x of GP-UCB-PE's exact means on all 16
  # pairs (the LM alone: 9), below on 12 (the LM alone: 6); on the tuning benchmark's
  # one all-continuous task (SVR, 3 seeds) 0.0010 against 0.0023. Mixed, conditional and
  # several-objective studies never take it.
  quadratic_step: QuadraticStepConfig | None = attrs.field(factory=QuadraticStepConfig,
                                                           kw_only=True,
                                                           metadata=CONTINUOUS_ONLY)
  local_share: float = attrs.field(default=0.5, kw_only=True)  # with `local_context`, above
  time_budget_s: float | None = attrs.field(default=None, kw_only=True)  # per suggest()
  min_candidates: int = attrs.field(default=64, kw_only=True)  # floor when degrading

  def seed_trials(self, with_priors: bool) -> int:
    """Feasible trials before the model suggests (at least 2: the model reads y by its spread)."""
    early = self.num_seed_trials_with_priors
    return max(2, early if with_priors and early is not None else self.num_seed_trials)

  def warp_kind(self, conditional: bool) -> str:
    """`y_warp`, with 'auto' resolved for a flat or a conditional search space."""
    if self.y_warp != 'auto':
      return self.y_warp
    return 'none' if conditional else 'rank'
