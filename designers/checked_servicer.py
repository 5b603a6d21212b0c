"""Vizier's servicer with the checks a client needs and Vizier 0.1.24 does not make.

- A study without a metric is refused at CreateStudy (Vizier accepts it, and its first
  model-based suggestion then fails with an IndexError).
- `suggest(count)` with count < 1 is refused (Vizier answers nothing, silently).
- A trial that does not fit the study's search space (a requested trial with an extra or
  missing parameter, a value out of bounds) is never handed to a client: Vizier would assign
  it, the client would raise "Invalid trial for this search space" reading it, and get the
  same trial back on every later call. Such a trial is completed as infeasible, with the
  reason, before suggestions are assigned, and the client goes on.

It also counts, per study, the SuggestTrials calls in progress (`waiting_behind`): Vizier
computes one study's suggestions one call at a time, so the in-process Pythia
(`serving.Service`) can serve the calls queued behind the current one from the same batch.
"""

from __future__ import annotations

import collections
import logging
import threading

import grpc
from vizier._src.service import study_pb2, vizier_service
from vizier.service import pyvizier as svz

from vizier_omnipred import search_space


def _refuse(context, message: str):
  """INVALID_ARGUMENT with `message` to a remote client; ValueError in process."""
  if context is None:
    raise ValueError(message)
  context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


class CheckedVizierServicer(vizier_service.VizierServicer):
  """`VizierServicer` plus the checks above; everything else is Vizier's."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._in_progress: collections.Counter = collections.Counter()
    self._count_lock = threading.Lock()

  def waiting_behind(self, study_name: str) -> int:
    """SuggestTrials calls for `study_name` in progress besides the one computing now."""
    with self._count_lock:
      return max(0, self._in_progress[study_name] - 1)

  def CreateStudy(self, request, context=None):  # pylint: disable=invalid-name
    spec = request.study.study_spec
    if not spec.metrics:
      _refuse(context, f'Study {request.study.display_name!r} has no metric: add one to its '
                       'metric_information (a name and a goal) before creating it.')
    return super().CreateStudy(request, context)

  def SuggestTrials(self, request, context=None):  # pylint: disable=invalid-name
    if request.suggestion_count < 1:
      _refuse(context, f'suggestion_count must be at least 1, got {request.suggestion_count}.')
    with self._count_lock:
      self._in_progress[request.parent] += 1
    try:
      self.close_unfit_trials(request.parent, request.client_id)
      return super().SuggestTrials(request, context)
    finally:
      with self._count_lock:
        self._in_progress[request.parent] -= 1

  def close_unfit_trials(self, study_name: str, client_id: str) -> int:
    """Completes as infeasible the study's REQUESTED trials, and `client_id`'s ACTIVE ones,
    whose parameters do not fit its search space. -> how many."""
    study = self.datastore.load_study(study_name)
    space = svz.StudyConfig.from_proto(study.study_spec).search_space
    closed = 0
    for trial in self.datastore.list_trials(study_name):
      waiting = trial.state == study_pb2.Trial.State.REQUESTED
      mine = trial.state == study_pb2.Trial.State.ACTIVE and trial.client_id == client_id
      if not (waiting or mine):
        continue
      params = {p.parameter_id: _value(p) for p in trial.parameters}
      try:
        search_space.check_parameters(space, params)
        continue
      except (ValueError, TypeError) as e:
        reason = f'does not fit the search space: {e}'
      trial.state = study_pb2.Trial.State.INFEASIBLE
      trial.infeasible_reason = reason
      self.datastore.update_trial(trial)
      logging.warning('Trial %s of %s completed as infeasible: it %s', trial.id, study_name,
                      reason)
      closed += 1
    return closed


def _value(parameter) -> float | str:
  """A proto parameter's value as a plain number or string."""
  kind = parameter.value.WhichOneof('kind')
  return getattr(parameter.value, kind)
