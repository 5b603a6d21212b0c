"""Vizier server plugin: the algorithm string `OMNIPRED`, selectable by any Vizier client.

    from vizier.service import vizier_server
    server = vizier_server.DefaultVizierServer(policy_factory=OmniPredPolicyFactory())

The Vizier server asks its policy factory anew on every Suggest call. For `OMNIPRED` this
factory returns the same in-memory policy (and so the same designer, with its warm LoRA
adapter) for a study until the study's config changes; Vizier's `InRamDesignerPolicy` feeds
it only the trials completed since the last call. A new process (a server restart) builds a
fresh policy, which rebuilds the designer from all the trials stored in the database.
Every other algorithm goes to Vizier's `DefaultPolicyFactory`.
"""

from __future__ import annotations

import collections
import logging
import threading

from vizier import pythia
from vizier import pyvizier as vz
from vizier._src.algorithms.policies import designer_policy
from vizier._src.service import policy_factory as vizier_policy_factory

from designers import prior_finder, vizier_fixes
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig
from designers.prior_finder import TransferConfig
from designers.lm_surrogate import LMSurrogate
from designers.surrogate import SurrogateFactory

ALGORITHM = 'OMNIPRED'
# What Vizier's DefaultPolicyFactory accepts (vizier 0.1.24), for the error message.
VIZIER_ALGORITHMS = (
    'DEFAULT', 'ALGORITHM_UNSPECIFIED', 'GP_UCB_PE', 'GAUSSIAN_PROCESS_BANDIT', 'RANDOM_SEARCH',
    'QUASI_RANDOM_SEARCH', 'GRID_SEARCH', 'SHUFFLED_GRID_SEARCH', 'NSGA2', 'BOCS', 'HARMONICA',
    'CMA_ES', 'EAGLE_STRATEGY',
)


class OmniPredPolicyFactory(pythia.PolicyFactory):
  """Maps `OMNIPRED` to an in-memory `OmniPredDesigner` per study; the rest to Vizier."""

  def __init__(self, *, config: OmniPredDesignerConfig = OmniPredDesignerConfig(),
               surrogate_factory: SurrogateFactory | None = None,
               max_studies: int = 64, seed: int | None = 0,
               transfer: TransferConfig = TransferConfig()):
    """`surrogate_factory(problem, study_info)` builds each study's surrogate (default: the
    shipped LM, loaded once on first use and shared by every study). `max_studies`: designers
    kept in memory; the least recently used is dropped (and rebuilt from its stored trials if
    its study comes back). `transfer`: which other studies a study's designer reads as prior
    studies (`prior_finder`), found when its designer is built."""
    vizier_fixes.apply()  # this server reads and writes nested conditional spaces whole
    self._config = config
    self._transfer = transfer
    self._surrogate_factory = surrogate_factory
    self._max_studies = max_studies
    self._seed = seed
    self._policies: collections.OrderedDict[str, designer_policy.InRamDesignerPolicy] = (
        collections.OrderedDict())
    self._lock = threading.Lock()
    self._default = vizier_policy_factory.DefaultPolicyFactory()

  def _designer(self, problem: vz.ProblemStatement, seed=None) -> OmniPredDesigner:
    if self._surrogate_factory is None:  # first OMNIPRED study: load the checkpoint now
      self._surrogate_factory = LMSurrogate.factory()
    return OmniPredDesigner(problem, seed=seed, config=self._config,
                            surrogate_factory=self._surrogate_factory)

  def __call__(self, problem_statement: vz.ProblemStatement, algorithm: str,
               policy_supporter: pythia.PolicySupporter, study_name: str) -> pythia.Policy:
    if algorithm != ALGORITHM:
      try:
        return self._default(problem_statement, algorithm, policy_supporter, study_name)
      except ValueError:
        raise ValueError(
            f'Algorithm {algorithm!r} is not registered. Known algorithms: {ALGORITHM}, '
            + ', '.join(VIZIER_ALGORITHMS) + '.'
        ) from None
    with self._lock:
      policy = self._policies.get(study_name)
      if policy is None or not _same_problem(policy._problem_statement, problem_statement):  # pylint: disable=protected-access
        def build(problem, seed=None):
          return self._with_priors(self._designer(problem, seed), problem, study_name,
                                   policy_supporter)
        policy = designer_policy.InRamDesignerPolicy(
            problem_statement, policy_supporter, build, seed=self._seed, policy_name=ALGORITHM)
        self._policies[study_name] = policy
      self._policies.move_to_end(study_name)
      while len(self._policies) > self._max_studies:
        self._policies.popitem(last=False)
      return policy

  def _with_priors(self, designer: OmniPredDesigner, problem: vz.ProblemStatement,
                   study_name: str, supporter: pythia.PolicySupporter) -> OmniPredDesigner:
    """The designer with the study's prior studies set, when it has any and its model can
    read them (else a warning: suggestions go on without them)."""
    found = prior_finder.find(study_name, problem, supporter, self._transfer)
    if found:
      try:
        designer.set_priors([(f.problem, f.trials) for f in found], names=[f.name for f in found])
      except ValueError as e:
        logging.warning('Study %s: its prior studies are not read: %s', study_name, e)
    return designer

  @property
  def num_cached_studies(self) -> int:
    return len(self._policies)


def _same_problem(a: vz.ProblemStatement, b: vz.ProblemStatement) -> bool:
  """Same search space and metrics (study metadata may change between calls)."""
  return a.search_space == b.search_space and a.metric_information == b.metric_information
