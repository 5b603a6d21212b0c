"""Shared fixtures: tiny models so the suite stays fast on 2 CPU cores."""

from vizier_omnipred import runtime

runtime.configure_openmp()  # before torch loads: the suite runs beside benchmarks on 2 cores
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


@pytest.fixture
def conditional_problem() -> vz.ProblemStatement:
  """A model-family choice with children, one of which nests a second choice (two levels)."""
  problem = vz.ProblemStatement()
  root = problem.search_space.root
  root.add_float_param('learning_rate', 1e-4, 1e-1, scale_type=vz.ScaleType.LOG)
  model = root.add_categorical_param('model', ['linear', 'svm', 'forest'])
  model.select_values(['linear']).add_float_param('l2', 1e-6, 1.0, scale_type=vz.ScaleType.LOG)
  svm = model.select_values(['svm'])
  svm.add_float_param('C', 1e-2, 1e2, scale_type=vz.ScaleType.LOG)
  kernel = svm.add_categorical_param('kernel', ['rbf', 'linear', 'poly'])
  kernel.select_values(['poly']).add_int_param('degree', 2, 5)
  kernel.select_values(['rbf']).add_float_param('gamma', 1e-3, 10.0, scale_type=vz.ScaleType.LOG)
  model.select_values(['forest']).add_int_param('depth', 1, 12)
  problem.metric_information.append(
      vz.MetricInformation(name='error', goal=vz.ObjectiveMetricGoal.MINIMIZE))
  return problem


def expected_active(params) -> set:
  """The parameter names `conditional_problem` must have for these choices."""
  names = {'learning_rate', 'model'}
  model = params['model'].value if hasattr(params['model'], 'value') else params['model']
  names |= {'linear': {'l2'}, 'svm': {'C', 'kernel'}, 'forest': {'depth'}}[model]
  if model == 'svm':
    kernel = params['kernel'].value if hasattr(params['kernel'], 'value') else params['kernel']
    names |= {'poly': {'degree'}, 'rbf': {'gamma'}, 'linear': set()}[kernel]
  return names


def quadratic_2d(n: int, seed: int):
  """(rows, y) for a shifted 2-D quadratic."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2, 2, (n, 2))
  y = (x[:, 0] - 0.5) ** 2 + 2 * (x[:, 1] + 0.3) ** 2
  return [{'x0': float(a), 'x1': float(b)} for a, b in x], y


class Hung(TimeoutError):
  """A call that did not return within its deadline (see `bounded`)."""


def bounded(fn, *args, timeout: float):
  """fn(*args) on a daemon thread, its result or its exception; `Hung` at `timeout` seconds.
  The hung call is abandoned (a daemon thread never holds up the test or the interpreter), so
  a deadline bounds even a call that never returns."""
  import threading  # pylint: disable=g-import-not-at-top
  out = {}

  def run():
    try:
      out['value'] = fn(*args)
    except BaseException as e:  # pylint: disable=broad-except  # re-raised in the caller
      out['error'] = e
  worker = threading.Thread(target=run, daemon=True)
  worker.start()
  worker.join(timeout)
  if worker.is_alive():
    raise Hung(f'{getattr(fn, "__name__", fn)} did not return within {timeout} s')
  if 'error' in out:
    raise out['error']
  return out['value']


@pytest.fixture(scope='session')
def tiny_checkpoint_file(tmp_path_factory) -> str:
  """A saved untrained tiny model, for code that loads a checkpoint by path (servers,
  samplers in other processes)."""
  from vizier_omnipred import OmniPredRegressor, checkpoints  # pylint: disable=g-import-not-at-top
  path = tmp_path_factory.mktemp('tiny_ckpt') / 'tiny.pt'
  checkpoints.save(path, OmniPredRegressor.from_scratch(TINY).base, card={'name': 'tiny'})
  return str(path)


@pytest.fixture(scope='session')
def postgres_server(tmp_path_factory):
  """A real PostgreSQL 16 server (the pgserver wheel) in a temporary directory, for the
  session; stopped at the end."""
  import pgserver  # pylint: disable=g-import-not-at-top
  server = pgserver.get_server(tmp_path_factory.mktemp('pg'), cleanup_mode='stop')
  yield server
  server.cleanup()


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
  """A fresh, empty database on the session's PostgreSQL server: its SQLAlchemy URL."""
  import re  # pylint: disable=g-import-not-at-top
  import uuid  # pylint: disable=g-import-not-at-top
  name = 't_' + re.sub(r'\W', '_', request.node.name.lower())[:40] + '_' + uuid.uuid4().hex[:6]
  postgres_server.psql(f'CREATE DATABASE {name};')
  return postgres_server.get_uri(name).replace('postgresql://', 'postgresql+psycopg://', 1)
