"""A Vizier database's finished studies as pretraining episodes (`pretrain --from-database`).

Read only (SELECTs on Vizier's `studies` and `trials` tables, any database SQLAlchemy reaches:
`vizier_omnipred.database`). A study is used when it is finished (no trial ACTIVE or
REQUESTED) and has at least `MIN_TRIALS` completed, feasible trials with a finite value of its
first objective. A share of the studies, chosen by a hash of their names (so the same ones on
every run), is held out: training never reads them and the run reports its loss on them.
An episode is a random split of one study's trials into context and queries, exactly as a
synthetic study's.
"""

from __future__ import annotations

import functools
import zlib
from typing import Sequence

import attrs
import numpy as np
import sqlalchemy as sqla
from vizier import pyvizier as vz
from vizier._src.service import study_pb2
from vizier.service import pyvizier as svz

from vizier_omnipred import episodes
from vizier_omnipred.database import engine_url, redacted
from vizier_omnipred.model import ModelConfig
from vizier_omnipred.serialization import Featurizer, StudyInputs

MIN_TRIALS = 5
_OPEN = (vz.TrialStatus.ACTIVE, vz.TrialStatus.REQUESTED)
_HASH_BUCKETS = 1000


@attrs.frozen
class UserStudy:
  name: str
  problem: vz.ProblemStatement
  rows: tuple[dict, ...]
  y: np.ndarray = attrs.field(eq=False)


def is_finished(trials: Sequence[vz.Trial]) -> bool:
  """No trial is ACTIVE or REQUESTED: nothing in the study is still changing. The rule for
  the studies pretraining reads and for those a server's `--transfer auto` picks."""
  return not any(t.status in _OPEN for t in trials)


def _usable(name: str, problem: vz.ProblemStatement, trials: Sequence[vz.Trial]
            ) -> UserStudy | None:
  objectives = [m for m in problem.metric_information if m.type == vz.MetricType.OBJECTIVE]
  if not objectives or not is_finished(trials):
    return None
  metric = objectives[0].name
  rows, ys = [], []
  for t in trials:
    if t.status != vz.TrialStatus.COMPLETED or t.infeasible or t.final_measurement is None:
      continue
    value = t.final_measurement.metrics.get(metric)
    if value is None or not np.isfinite(value.value):
      continue
    rows.append({k: v.value for k, v in t.parameters.items()})
    ys.append(float(value.value))
  if len(rows) < MIN_TRIALS:
    return None
  return UserStudy(name, problem, tuple(rows), np.asarray(ys))


@functools.lru_cache(maxsize=4)
def read(url: str) -> tuple[UserStudy, ...]:
  """The database's usable studies (see the module doc), by name; cached per process (each
  batch-building process reads the database once)."""
  engine = sqla.create_engine(engine_url(url))
  try:
    with engine.connect() as con:
      studies = con.execute(sqla.text(
          'SELECT study_name, serialized_study FROM studies ORDER BY study_name')).fetchall()
      trials = con.execute(sqla.text(
          'SELECT owner_id, study_id, serialized_trial FROM trials')).fetchall()
  except sqla.exc.DBAPIError as e:
    raise ValueError(f'--from-database {redacted(url)}: cannot read a Vizier database there '
                     f'({e.orig}).') from None
  finally:
    engine.dispose()
  by_study: dict[tuple[str, str], list] = {}
  for owner, study_id, blob in trials:
    by_study.setdefault((owner, study_id), []).append(blob)
  out = []
  for name, blob in studies:
    study = study_pb2.Study.FromString(bytes(blob))
    problem = svz.StudyConfig.from_proto(study.study_spec).to_problem()
    owner, study_id = name.split('/')[1], name.split('/')[3]
    protos = [study_pb2.Trial.FromString(bytes(b)) for b in by_study.get((owner, study_id), [])]
    found = _usable(name, problem, svz.TrialConverter.from_protos(protos))
    if found is not None:
      out.append(found)
  return tuple(out)


def is_held_out(study: UserStudy, share: float) -> bool:
  return zlib.crc32(study.name.encode()) % _HASH_BUCKETS < share * _HASH_BUCKETS


def split(url: str, held_out_share: float) -> tuple[tuple[UserStudy, ...], tuple[UserStudy, ...]]:
  """(training studies, held-out studies) of the database at `url`."""
  studies = read(url)
  held = tuple(s for s in studies if is_held_out(s, held_out_share))
  return tuple(s for s in studies if not is_held_out(s, held_out_share)), held


def episode(study: UserStudy, num_context: int, num_queries: int, rng: np.random.Generator,
            model_config: ModelConfig) -> tuple[StudyInputs, np.ndarray]:
  """A random context/query split of the study's trials (fewer when it has fewer)."""
  n = len(study.rows)
  num_queries = max(1, min(num_queries, n - 2))
  num_context = max(2, min(num_context, n - num_queries))
  order = rng.permutation(n)[:num_context + num_queries]
  featurizer = Featurizer(study.problem, config=model_config.featurizer)
  items = featurizer.featurize([study.rows[i] for i in order])
  return episodes.episode(items, featurizer.metadata(), study.y[order], num_context,
                           model_config.y_codec)
