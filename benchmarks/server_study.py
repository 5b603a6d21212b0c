"""The study the server benchmarks run: shifted Sphere, OMNIPRED, evaluated in-process."""

from __future__ import annotations

from vizier import pyvizier as vz
from vizier.service import pyvizier as svz

from designers.study_runner import shifted_bbob


def study_config(dim: int = 4) -> svz.StudyConfig:
  config = svz.StudyConfig(algorithm='OMNIPRED')
  problem = shifted_bbob('Sphere', dim, 0).problem_statement()
  config.search_space = problem.search_space
  config.metric_information = problem.metric_information
  return config


def evaluate(exptr, params: dict) -> float:
  t = vz.Trial(parameters=params)
  exptr.evaluate([t])
  return t.final_measurement.metrics['bbob_eval'].value
