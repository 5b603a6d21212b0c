"""Shared fixtures: tiny models so the suite stays fast on 2 CPU cores."""

import vizier_omnipred  # noqa: F401  # first: sets OMP_WAIT_POLICY before torch loads
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402

from vizier_omnipred.model import ModelConfig  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY = ModelConfig(d_model=32, num_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64)


@pytest.fixture
def tiny_config() -> ModelConfig:
  return TINY


@pytest.fixture
def mixed_problem() -> vz.ProblemStatement:
  """Every flat parameter type Vizier has."""
  problem = vz.ProblemStatement()
  root = problem.search_space.root
  root.add_float_param('learning_rate', 1e-5, 1e-1, scale_type=vz.ScaleType.LOG)
  root.add_float_param('dropout', 0.0, 0.5)
  root.add_int_param('num_layers', 1, 8)
  root.add_discrete_param('batch_size', [16, 32, 64, 128])
  root.add_categorical_param('optimizer', ['adam', 'sgd', 'rmsprop'])
  root.add_bool_param('use_bias')
  problem.metric_information.append(
      vz.MetricInformation(name='accuracy', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  problem.metadata['title'] = 'mlp on mnist'
  return problem


def quadratic_2d(n: int, seed: int):
  """(rows, y) for a shifted 2-D quadratic."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2, 2, (n, 2))
  y = (x[:, 0] - 0.5) ** 2 + 2 * (x[:, 1] + 0.3) ** 2
  return [{'x0': float(a), 'x1': float(b)} for a, b in x], y
