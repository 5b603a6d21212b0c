"""Which of the user's other studies a server study reads as prior studies.

Listed: a study config's metadata names them, `metadata.ns('omnipred')['prior_studies'] =
'owners/me/studies/a,owners/me/studies/b'`; always read (a name that does not resolve is
logged and skipped). Auto (`vizier-omnipred serve --transfer auto`): also up to
`TransferConfig.max_auto` other studies of the same owner that are finished (no trial
ACTIVE or REQUESTED, at least `min_trials` completed), share at least `min_shared_fraction` of
this study's parameter names and have a metric named as one of its objectives; the ones
sharing the most parameters first, then the larger. Everything is read through the Pythia
policy supporter (Vizier's GetStudy, ListStudies, ListTrials: the datastore, read only).
"""

from __future__ import annotations

import logging

import attrs
from vizier import pythia
from vizier import pyvizier as vz
from vizier._src.service import resources, vizier_service_pb2
from vizier.service import pyvizier as svz

from vizier_omnipred.pretraining import user_studies

METADATA_NAMESPACE = 'omnipred'
METADATA_KEY = 'prior_studies'


@attrs.frozen
class TransferConfig:
  """How a server finds a study's prior studies (see the module doc)."""

  auto: bool = attrs.field(default=False, kw_only=True)
  max_auto: int = attrs.field(default=3, kw_only=True)
  min_shared_fraction: float = attrs.field(default=0.5, kw_only=True)
  min_trials: int = attrs.field(default=5, kw_only=True)


@attrs.frozen
class FoundStudy:
  name: str
  problem: vz.ProblemStatement
  trials: tuple[vz.Trial, ...]


def listed(problem: vz.ProblemStatement) -> list[str]:
  text = problem.metadata.ns(METADATA_NAMESPACE).get(METADATA_KEY, '') or ''
  return [name.strip() for name in str(text).split(',') if name.strip()]


def _read(supporter: pythia.PolicySupporter, name: str) -> FoundStudy | None:
  try:
    problem = supporter.GetStudyConfig(name)
    trials = supporter.GetTrials(study_guid=name)
  except Exception as e:  # pylint: disable=broad-except  # a stale name must not stop suggestions
    logging.warning('Prior study %s cannot be read (%s); going on without it.', name, e)
    return None
  return FoundStudy(name, problem, tuple(trials))


def _names(problem: vz.ProblemStatement) -> set[str]:
  return set(problem.search_space.parameter_names)


def _candidates(study_name: str, supporter: pythia.PolicySupporter) -> list[str]:
  """Every other study of the same owner (ListStudies through the supporter's service)."""
  service = getattr(supporter, '_vizier_service', None)
  if service is None:
    return []
  owner = resources.StudyResource.from_name(study_name).owner_resource.name
  response = service.ListStudies(vizier_service_pb2.ListStudiesRequest(parent=owner))
  return [s.name for s in response.studies if s.name != study_name]


def _fits(found: FoundStudy, problem: vz.ProblemStatement, config: TransferConfig) -> float:
  """The share of `problem`'s parameters `found` has, or 0 when it does not qualify."""
  if not user_studies.is_finished(found.trials):
    return 0.0
  if sum(t.status == vz.TrialStatus.COMPLETED for t in found.trials) < config.min_trials:
    return 0.0
  objectives = {m.name for m in problem.metric_information
                if m.type == vz.MetricType.OBJECTIVE}
  if not objectives & {m.name for m in found.problem.metric_information}:
    return 0.0
  names = _names(problem)
  share = len(names & _names(found.problem)) / max(1, len(names))
  return share if share >= config.min_shared_fraction else 0.0


def find(study_name: str, problem: vz.ProblemStatement, supporter: pythia.PolicySupporter,
         config: TransferConfig) -> list[FoundStudy]:
  """The listed prior studies, then (auto) the best-fitting finished ones."""
  out = [f for f in (_read(supporter, n) for n in listed(problem)) if f is not None]
  if not config.auto:
    return out
  taken = {f.name for f in out} | {study_name}
  scored = []
  for name in _candidates(study_name, supporter):
    if name in taken:
      continue
    found = _read(supporter, name)
    if found is not None and (share := _fits(found, problem, config)) > 0:
      completed = sum(t.status == vz.TrialStatus.COMPLETED for t in found.trials)
      scored.append((share, completed, found))
  scored.sort(key=lambda s: (-s[0], -s[1], s[2].name))
  return out + [found for _, _, found in scored[:config.max_auto]]


def as_config_metadata(config: svz.StudyConfig, names: list[str]) -> None:
  """Lists `names` as prior studies in a study config (what a client sets)."""
  config.metadata.ns(METADATA_NAMESPACE)[METADATA_KEY] = ','.join(names)
