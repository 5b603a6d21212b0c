"""The designers the benchmarks run, by name: OmniPred's variants and Vizier's baselines.

`designer_factory(name)` -> (problem, seed) -> Designer; `signature_of(name)` hashes the
weights and configs an OmniPred variant reads, so a stored run made otherwise runs again
(`run_store.is_done`).
"""

from __future__ import annotations

import functools
import hashlib
import pathlib

import attrs
import numpy as np
from vizier import pyvizier as vz

from designers.acquisition import UCB
from designers.acquisition_search import EvolutionarySearch
from designers.quadratic_step import QuadraticStepConfig
from designers.trust_region import TrustRegionConfig
from vizier_omnipred.relevance import RelevanceConfig

BASELINES = ('random', 'quasi_random', 'eagle', 'cmaes', 'gp_ucb_pe')
# OmniPred variants: (OmniPredDesignerConfig fields, LMSurrogateConfig fields) over the
# defaults. `omnipred` is the default (zero-shot in context); `omnipred_lora` adds test-time
# LoRA from 20 trials (30 steps once, then 4 per suggestion); `omnipred_budget` cuts the
# candidate pool by the clock (0.7 s; not reproducible).
OMNIPRED_VARIANTS = {
    'omnipred': ({}, {}),
    'omnipred_lora': ({}, {'lora_from_trials': 20}),
    'omnipred_budget': ({'time_budget_s': 0.7}, {}),
    # Several objectives sampled jointly by the chain rule (the default: independently).
    'omnipred_joint': ({'joint_objectives': True}, {}),
    # y read through an affine map instead of ranks (a plateau's tiny differences stay tiny).
    'omnipred_affine': ({'y_warp': 'none'}, {}),
    # The surrogate's S values per candidate are its exact quantiles (k + 1/2) / S, not draws.
    'omnipred_quantiles': ({}, {'draws': 'quantiles'}),
    # The model reads every parameter (the default only those its held-out likelihood keeps).
    'omnipred_all_parameters': ({}, {'relevance': None}),
    # ... and chooses them again at every suggestion (the default: once the study grew 20%).
    'omnipred_reselect': ({}, {'relevance': RelevanceConfig()}),
    # The pool evolved under a cheap inner score, finalists sampled in full.
    'omnipred_search': ({'optimizer': EvolutionarySearch()}, {}),
    # Tied values share their mean rank.
    'omnipred_midrank': ({'y_warp': 'midrank'}, {}),
    # y read as -log of its gap to the best value.
    'omnipred_logwarp': ({'y_warp': 'log'}, {}),
    # Vizier's half-rank output warp: the better half's values kept, the worse half by rank.
    'omnipred_halfrank': ({'y_warp': 'halfrank'}, {}),
    # Other acquisitions over the same samples (the default: UCB, the 0.9 quantile).
    'omnipred_ei': ({'acquisition': 'ei'}, {}),
    'omnipred_thompson': ({'acquisition': 'thompson'}, {}),
    # UCB at a lower quantile of the same samples: less optimism, more exploitation.
    'omnipred_ucb75': ({'acquisition': UCB(quantile=0.75)}, {}),
    'omnipred_ucb50': ({'acquisition': UCB(quantile=0.5)}, {}),
    # The LM's suggestion at every turn: no local quadratic model's step (the default takes
    # it wherever its fit holds, on one objective over continuous parameters).
    'omnipred_lm': ({'quadratic_step': None}, {}),
    # The step's settings as the default has them, named for the quadratic presets' tables
    # (the same runs as `omnipred`'s: `run_store.adopt`); `_every2`: the step every other
    # model-phase suggestion, the LM's in between.
    'omnipred_quadratic': ({'quadratic_step': QuadraticStepConfig()}, {}),
    'omnipred_quadratic_every2': ({'quadratic_step': QuadraticStepConfig(every=2)}, {}),
    # The full quadratic too where the trials allow (4-D from 23 trials), the better fit's step.
    'omnipred_quadratic_cross': ({'quadratic_step': QuadraticStepConfig(cross_terms=True)}, {}),
    # A trust region's radius: after a step that did not improve, the next one's box halves.
    'omnipred_quadratic_shrink': ({'quadratic_step': QuadraticStepConfig(shrink=0.5)}, {}),
    # 1.25 trials per coefficient: the step from 22 trials in 8-D, from a tighter cloud.
    'omnipred_quadratic_ppc125': (
        {'quadratic_step': QuadraticStepConfig(points_per_coefficient=1.25)}, {}),
    # Only the coordinates the fit resolves move (curvature or slope 2 standard errors from 0).
    'omnipred_quadratic_confident': (
        {'quadratic_step': QuadraticStepConfig(curvature_confidence=2.0)}, {}),
    # ... and the unresolved ones move within a quarter of the box.
    'omnipred_quadratic_confident25': (
        {'quadratic_step': QuadraticStepConfig(curvature_confidence=2.0, unresolved_share=0.25)},
        {}),
    # The step offered wherever its fit's leave-one-out R^2 is at least 0.5 (not 0.9).
    'omnipred_quadratic_fit05': ({'quadratic_step': QuadraticStepConfig(min_fit=0.5)}, {}),
    # The step fitted to the trials with the lowest values, not those nearest the incumbent.
    'omnipred_quadratic_lowest': ({'quadratic_step': QuadraticStepConfig(fit_lowest=True)}, {}),
    # The lowest trials, and the nearest where the lowest give no step (plateaus).
    'omnipred_quadratic_lowest_fallback': (
        {'quadratic_step': QuadraticStepConfig(fit_lowest=True, nearest_fallback=True)}, {}),
    # The nearest trials, and after a step that did not improve the lowest (and back).
    'omnipred_quadratic_switch': (
        {'quadratic_step': QuadraticStepConfig(switch_on_failure=True)}, {}),
    # Once past 20 feasible trials, read only the 20 nearest the best and move around it.
    'omnipred_local': ({'local_context': 20, 'local_share': 1.0}, {}),
    # TuRBO's radius rule (grow after 2 improvements, halve after 4 stalls) instead of a fixed one.
    'omnipred_adaptive_region': ({'trust_region': TrustRegionConfig(adaptive=True)}, {}),
    # Local moves at radii from 0.15 down to 0.15 / 30 (log-uniform): a close look at the incumbent.
    'omnipred_multiscale': ({'trust_region': TrustRegionConfig(min_scale=1 / 30)}, {}),
}


def is_omnipred(name: str) -> bool:
  """An OmniPred variant, with the shipped checkpoint or a candidate's (`variant@tag`)."""
  return name.partition('@')[0] in OMNIPRED_VARIANTS


def checkpoint_of(name: str, candidates: dict[str, str] | None = None) -> str | None:
  """The checkpoint file an OmniPred variant reads: its candidate's (`variant@tag`), else
  None (the shipped one)."""
  tag = name.partition('@')[2]
  if not tag:
    return None
  if tag not in (candidates or {}):
    raise ValueError(f'Designer {name!r} reads candidate checkpoint {tag!r}, which no'
                     f' --candidate {tag}=PATH names (given: {sorted(candidates or {})}).')
  return candidates[tag]


def parse_candidates(specs) -> dict[str, str]:
  """`--candidate TAG=PATH` flags -> {tag: checkpoint path}; exits naming a bad one."""
  candidates = {}
  for spec in specs:
    tag, sep, path = spec.partition('=')
    if not sep or not tag or not path or '@' in tag:
      raise SystemExit(f'--candidate {spec!r}: expected TAG=PATH (TAG without "@").')
    if not pathlib.Path(path).is_file():
      raise SystemExit(f'--candidate {spec!r}: no checkpoint file at {path}.')
    candidates[tag] = path
  return candidates


def omnipred_configs(name: str, candidates: dict[str, str] | None = None):
  """-> (OmniPredDesignerConfig, LMSurrogateConfig) of an OmniPred variant."""
  from designers.omnipred_designer import OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  designer_fields, surrogate_fields = OMNIPRED_VARIANTS[name.partition('@')[0]]
  checkpoint = checkpoint_of(name, candidates)
  if checkpoint:
    surrogate_fields = dict(surrogate_fields, checkpoint=checkpoint)
  return OmniPredDesignerConfig(**designer_fields), LMSurrogateConfig(**surrogate_fields)


def signature_of(name: str, candidates: dict[str, str] | None = None,
                 problem: vz.ProblemStatement | None = None) -> str | None:
  """A hash of the weights an OmniPred variant reads and of its configs (None: not an LM
  designer). A raw run records it, so a run made otherwise (before a new checkpoint shipped,
  or a default changed) is run again rather than reported as this one's. `problem`: the
  study's, where it is not one objective over continuous parameters (`continuous_study`) the
  fields that act only there are left out; None: they are signed."""
  if not is_omnipred(name):
    return None
  from vizier_omnipred import checkpoints  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(checkpoint_of(name, candidates) or checkpoints.SHIPPED)
  designer, surrogate = omnipred_configs(name, candidates)
  return signature(path, designer, surrogate, continuous=(
      problem is None or continuous_study(problem, designer.metric_name)))


def continuous_study(problem: vz.ProblemStatement, metric_name: str | None = None) -> bool:
  """One objective (or `metric_name`, optimised alone), no safety metric, every parameter
  DOUBLE and none conditional: the studies whose runs the designer's `CONTINUOUS_ONLY` fields
  (the quadratic step) can change."""
  metrics = problem.metric_information
  space = problem.search_space
  objectives = 1 if metric_name else len(metrics.of_type(vz.MetricType.OBJECTIVE))
  return (objectives == 1
          and not metrics.of_type(vz.MetricType.SAFETY) and not space.is_conditional
          and all(p.type == vz.ParameterType.DOUBLE for p in space.parameters))


def config_text(designer, surrogate, with_priors: bool = False, continuous: bool = True) -> str:
  """The configs as a signature reads them. Left out: the checkpoint's path (the weights are
  hashed by content); fields at None, so that a new optional field, None meaning what the
  code did before it, reruns nothing; unless `with_priors` (a benchmark that sets prior
  studies), the fields that act only with prior studies set (`PRIORS_ONLY`); and unless
  `continuous`, those that act only on one objective over continuous parameters
  (`CONTINUOUS_ONLY`)."""
  scope = _Scope(with_priors, continuous)
  return repr((type(designer).__name__, _Signed(designer, scope).fields(),
               _Signed(attrs.evolve(surrogate, checkpoint=None), scope)))


def signature(weights: pathlib.Path, designer, surrogate, with_priors: bool = False,
              continuous: bool = True) -> str:
  """The hash a raw run records: of the weights (`checkpoints.weights_digest`: config and
  tensors, not the card; unless `with_priors`, not what acts only with prior studies) and of
  the configs (`config_text`)."""
  stat = pathlib.Path(weights).stat()
  return hashlib.sha256((_weights_digest(str(pathlib.Path(weights).resolve()), stat.st_mtime_ns,
                                         stat.st_size, with_priors)
                         + config_text(designer, surrogate, with_priors, continuous)).encode()
                        ).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _weights_digest(path: str, mtime_ns: int, size: int, with_priors: bool) -> str:
  """`checkpoints.weights_digest`, read once per file as it is on disk (its modification
  time and size in the key): a table signs every (designer, task) pair with the same weights."""
  del mtime_ns, size  # the cache key only
  from vizier_omnipred import checkpoints  # pylint: disable=g-import-not-at-top
  return checkpoints.weights_digest(path, with_priors=with_priors)


@attrs.frozen
class _Scope:
  """What the signed study has: prior studies set; one objective over continuous parameters."""
  with_priors: bool = False
  continuous: bool = True

  def signs(self, field) -> bool:
    return ((self.with_priors or not field.metadata.get('priors_only'))
            and (self.continuous or not field.metadata.get('continuous_only')))


class _Signed:
  """An attrs instance's repr (attrs' own format) without its fields at None nor those that
  cannot act in the `scope`; nested attrs instances likewise (an optimiser's config inside
  the designer's too)."""

  def __init__(self, value, scope: _Scope):
    self.value, self.scope = value, scope

  def _signed(self, field) -> bool:
    return getattr(self.value, field.name) is not None and self.scope.signs(field)

  def fields(self) -> dict:
    return {f.name: _Signed(getattr(self.value, f.name), self.scope)
            for f in attrs.fields(type(self.value)) if self._signed(f)}

  def __repr__(self) -> str:
    v = self.value
    if not attrs.has(type(v)):
      return repr(v)
    parts = [f'{f.name}={_Signed(getattr(v, f.name), self.scope)!r}'
             for f in attrs.fields(type(v)) if f.repr and self._signed(f)]
    return f'{type(v).__qualname__}({", ".join(parts)})'




def designer_factory(name: str, candidates: dict[str, str] | None = None):
  """-> (problem, seed) -> Designer. Imports lazily: JAX and peft cost seconds to import.
  `candidates`: tag -> checkpoint path, for names `variant@tag`."""
  if is_omnipred(name):
    from designers.omnipred_designer import OmniPredDesigner  # pylint: disable=g-import-not-at-top
    from designers.lm_surrogate import LMSurrogate  # pylint: disable=g-import-not-at-top
    config, surrogate_config = omnipred_configs(name, candidates)
    surrogates = LMSurrogate.factory(surrogate_config)
    return lambda p, seed=None: OmniPredDesigner(p, seed=seed, config=config,
                                                 surrogate_factory=surrogates)
  if name == 'random':
    from vizier._src.algorithms.designers import random  # pylint: disable=g-import-not-at-top
    return lambda p, seed=None: random.RandomDesigner(p.search_space, seed=seed)
  if name == 'quasi_random':
    from vizier._src.algorithms.designers import quasi_random  # pylint: disable=g-import-not-at-top
    return lambda p, seed=None: quasi_random.QuasiRandomDesigner(p.search_space, seed=seed)
  if name == 'eagle':
    from vizier._src.algorithms.designers.eagle_strategy import eagle_strategy  # pylint: disable=g-import-not-at-top
    return lambda p, seed=None: eagle_strategy.EagleStrategyDesigner(p, seed=seed)
  if name == 'cmaes':
    from vizier._src.algorithms.designers import cmaes  # pylint: disable=g-import-not-at-top

    def make(p, seed=None):
      np.random.seed(seed)  # CMAESDesigner draws from numpy's global generator
      return cmaes.CMAESDesigner(p)
    return make
  if name == 'gp_ucb_pe':
    import jax  # pylint: disable=g-import-not-at-top
    from vizier._src.algorithms.designers import gp_ucb_pe  # pylint: disable=g-import-not-at-top
    return lambda p, seed=None: gp_ucb_pe.VizierGPUCBPEBandit(
        p, rng=jax.random.PRNGKey(seed or 0))
  raise ValueError(f'Unknown designer {name!r}; known: {", ".join(OMNIPRED_VARIANTS)},'
                   f' {", ".join(BASELINES)}.')


# Vizier's GP-UCB-PE exhausts XLA's JIT memory after ~110 suggestions in one process
# ("LLVM compilation error: Cannot allocate memory", seen here): one process per GP study.
ISOLATED = ('gp_ucb_pe',)
