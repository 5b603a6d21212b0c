"""Faults and bad input against a real server on loopback: nothing hangs, nothing is lost.

Every client call runs under a deadline (`_bounded`), so a hang fails the test instead of
stalling the suite.
"""

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from vizier import algorithms as vza
from vizier import pyvizier as vz
from vizier.service import clients
from vizier.service import pyvizier as svz

from designers import vizier_fixes
from designers.candidates import CandidateSpace, parameter_key
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig
from designers.plugin import OmniPredPolicyFactory
from designers.serving import Service, database_url
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig
from vizier_omnipred import ModelConfig, OmniPredRegressor, StudyInfo, checkpoints
from tests.conftest import TINY, Hung, bounded

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEADLINE_S = 60  # any single client call; a hang fails here


def _bounded(fn, *args, timeout=DEADLINE_S):
  return bounded(fn, *args, timeout=timeout)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
  path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
  checkpoints.save(path, OmniPredRegressor.from_scratch(TINY).base, card={'name': 'tiny'})
  return str(path)


def _factory(checkpoint):
  return OmniPredPolicyFactory(
      config=OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=8),
      surrogate_factory=LMSurrogate.factory(LMSurrogateConfig(checkpoint=checkpoint)))


def _config(algorithm='OMNIPRED', objectives=('loss',), conditional=False) -> svz.StudyConfig:
  """x0, x1 and opt in {adam, sgd}; conditional: sgd has `momentum` and `schedule` in
  {constant, step}, and step has `decay_every` (two levels)."""
  config = svz.StudyConfig(algorithm=algorithm)
  config.search_space.root.add_float_param('x0', -5.0, 5.0)
  config.search_space.root.add_float_param('x1', -5.0, 5.0)
  opt = config.search_space.root.add_categorical_param('opt', ['adam', 'sgd'])
  if conditional:
    sgd = opt.select_values(['sgd'])
    sgd.add_float_param('momentum', 0.0, 0.99)
    schedule = sgd.add_categorical_param('schedule', ['constant', 'step'])
    schedule.select_values(['step']).add_int_param('decay_every', 1, 50)
  for name in objectives:
    config.metric_information.append(
        vz.MetricInformation(name, goal=vz.ObjectiveMetricGoal.MINIMIZE))
  return config


def _loss(p) -> float:
  return p['x0'] ** 2 + (p['x1'] - 1) ** 2 + (p['opt'] == 'sgd')


def _cycle(study, worker, n=1):
  for trial in study.suggest(count=n, client_id=worker):
    trial.complete(vz.Measurement({'loss': _loss(trial.parameters)}))


@pytest.fixture
def service(tmp_path, tiny_checkpoint):
  with Service(database=tmp_path / 'v.db', policy_factory=_factory(tiny_checkpoint)) as s:
    clients.environment_variables.server_endpoint = s.endpoint
    yield s


@pytest.mark.parametrize('algorithm, objectives, conditional, message', [
    ('MAGIC', ('loss',), False, r"MAGIC\\?' is not registered"),
])
def test_a_policy_error_reaches_the_client_every_time_and_never_hangs(
    service, algorithm, objectives, conditional, message):
  study = clients.Study.from_study_config(_config(algorithm, objectives, conditional),
                                          owner='me', study_id='bad')
  for _ in range(2):  # the second call from the same client used to wait forever
    with pytest.raises(Exception, match=message):
      _bounded(lambda: study.suggest(count=1, client_id='w0'))


def test_a_conditional_study_round_trips_through_the_server(service):
  vizier_fixes.apply()  # the client sends the whole tree (the server's factory applied it too)
  study = clients.Study.from_study_config(_config(conditional=True), owner='me', study_id='c')
  for _ in range(5):
    _bounded(_cycle, study, 'w0', 2)
  done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
  assert len(done) == 10
  for t in done:
    p = {k: v.value for k, v in t.parameters.items()}
    expected = {'x0', 'x1', 'opt'}
    if p['opt'] == 'sgd':
      expected |= {'momentum', 'schedule'} | ({'decay_every'} if p['schedule'] == 'step' else set())
    assert set(p) == expected, p
    if 'decay_every' in p:
      assert float(p['decay_every']).is_integer() and 1 <= p['decay_every'] <= 50
  assert done[-1].metadata.ns('omnipred')['phase'] == 'model'
  assert 'left_out_trials' not in done[-1].metadata.ns('omnipred')


def test_a_two_objective_study_round_trips_through_the_server(service):
  study = clients.Study.from_study_config(_config(objectives=('loss', 'latency')),
                                          owner='me', study_id='mo')
  for i in range(6):
    for trial in _bounded(lambda: list(study.suggest(count=1, client_id='w0'))):
      p = {k: v for k, v in trial.parameters.items()}
      latency = float('nan') if i == 4 else abs(p['x0'] - 2.0)
      trial.complete(vz.Measurement({'loss': _loss(p), 'latency': latency}))
  done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
  assert len(done) == 6
  md = done[-1].metadata.ns('omnipred')
  assert md['phase'] == 'model'
  assert 'predicted_median:loss' in md and 'predicted_median:latency' in md


def test_a_malformed_trial_is_left_out_and_the_study_goes_on(service):
  study = clients.Study.from_study_config(_config(), owner='me', study_id='s')
  for _ in range(4):
    _bounded(_cycle, study, 'w0')
  # Study.request skips the client-side check that add_trial makes. The server never hands
  # this trial out (x1 missing, a category the space does not have): it is completed as
  # infeasible with the reason, and the designer leaves it out of the model.
  _bounded(study.request, vz.TrialSuggestion(parameters={'x0': 1.0, 'opt': 'adamw'}))
  for _ in range(4):
    _bounded(_cycle, study, 'w0')
  trials = list(study.trials().get())
  unfit = [t for t in trials if t.infeasible]
  assert len(unfit) == 1 and "'x1' is missing" in unfit[0].infeasibility_reason
  done = [t for t in trials if not t.infeasible]
  assert len(done) == 8
  last = done[-1].metadata.ns('omnipred')
  assert last['phase'] == 'model' and last['left_out_trials'] == '1'


def _workers_at_once(study, n: int, cycles: int) -> None:
  """n workers (client ids w0..) start together, each running `cycles` cycles on its own
  daemon thread; every one must end, without an error, within 4 deadlines."""
  barrier = threading.Barrier(n)
  errors = []

  def work(i):
    try:
      barrier.wait()
      for _ in range(cycles):
        _cycle(study, f'w{i}')
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)
  threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=4 * DEADLINE_S)
  assert not any(t.is_alive() for t in threads) and not errors, errors


def test_eight_concurrent_workers_lose_nothing_and_repeat_nothing(service):
  study = clients.Study.from_study_config(_config(), owner='me', study_id='many')
  _workers_at_once(study, 8, 3)
  done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
  assert len(done) == 24
  assert len({parameter_key(t.parameters) for t in done}) == 24


def _serve(db: pathlib.Path, port: int, cwd: pathlib.Path, checkpoint: str) -> subprocess.Popen:
  code = ('import sys; from designers.serving import Service;'
          'from tests.test_faults import _factory;'
          f's = Service(port={port}, database={str(db)!r}, policy_factory=_factory({checkpoint!r}));'
          'print("ready", flush=True); sys.stdin.read()')
  env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
  proc = subprocess.Popen([sys.executable, '-c', code], cwd=cwd, env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  assert _bounded(proc.stdout.readline) == 'ready\n'
  return proc


def _open_operations(db: pathlib.Path) -> int:
  from google.longrunning import operations_pb2  # pylint: disable=g-import-not-at-top
  with sqlite3.connect(db) as con:
    rows = con.execute('SELECT serialized_op FROM suggestion_operations').fetchall()
  return sum(not operations_pb2.Operation.FromString(r[0]).done for r in rows)


def test_kill_9_mid_suggest_then_restart_answers_the_same_client(tmp_path, tiny_checkpoint):
  import portpicker  # pylint: disable=g-import-not-at-top
  db, port = tmp_path / 'v.db', portpicker.pick_unused_port()
  proc = _serve(db, port, tmp_path, tiny_checkpoint)
  clients.environment_variables.server_endpoint = f'localhost:{port}'
  study = clients.Study.from_study_config(_config(), owner='me', study_id='k')
  for _ in range(4):
    _bounded(_cycle, study, 'w0')
  # Suggest in the background and kill -9 the server while the operation is open.
  pending = threading.Thread(target=lambda: _cycle(study, 'w0'), daemon=True)
  pending.start()
  deadline = time.monotonic() + DEADLINE_S
  while _open_operations(db) == 0 and time.monotonic() < deadline:
    time.sleep(0.005)
  assert _open_operations(db) == 1
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  proc = _serve(db, port, tmp_path, tiny_checkpoint)
  try:
    assert _open_operations(db) == 0  # closed as failed at start-up
    study = clients.Study.from_owner_and_id('me', 'k')
    _bounded(_cycle, study, 'w0')  # the interrupted client id gets an answer
    done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
    assert len(done) >= 5  # every completed trial survived
  finally:
    proc.kill()


def test_database_path_and_url_mean_the_same_file_from_any_directory(tmp_path, monkeypatch):
  target = tmp_path / 'data' / 'v.db'
  for cwd in (tmp_path, tmp_path / 'elsewhere'):
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    assert database_url(f'sqlite:///{target}') == (f'sqlite:///{target}', target)
    assert database_url(str(target)) == (f'sqlite:///{target}', target)
  monkeypatch.chdir(tmp_path)
  assert database_url('rel/v.db')[1] == tmp_path / 'rel' / 'v.db'
  assert database_url('sqlite:///rel/v.db')[1] == tmp_path / 'rel' / 'v.db'
  assert database_url('sqlite:///:memory:') == ('sqlite:///:memory:', None)


def test_the_server_finds_its_study_again_when_started_from_another_directory(
    tmp_path, tiny_checkpoint, monkeypatch):
  url = f'sqlite:///{tmp_path / "abs.db"}'
  for cwd in ('a', 'b'):
    (tmp_path / cwd).mkdir()
    monkeypatch.chdir(tmp_path / cwd)
    with Service(database=url, policy_factory=_factory(tiny_checkpoint)) as s:
      assert s.database == tmp_path / 'abs.db'
      clients.environment_variables.server_endpoint = s.endpoint
      study = clients.Study.from_study_config(_config(), owner='me', study_id='p')
      _bounded(_cycle, study, 'w0')
      assert len(list(study.trials().get())) == (1 if cwd == 'a' else 2)
  assert not list((tmp_path / 'a').iterdir()) and not list((tmp_path / 'b').iterdir())


def test_tls_round_trip_with_a_self_signed_certificate(tmp_path, tiny_checkpoint):
  import grpc  # pylint: disable=g-import-not-at-top
  from vizier._src.service import vizier_service_pb2, vizier_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  key, cert = tmp_path / 'k.pem', tmp_path / 'c.pem'
  subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                  '-out', cert, '-days', '1', '-subj', '/CN=localhost',
                  '-addext', 'subjectAltName=DNS:localhost'], check=True, capture_output=True)
  with Service(database=tmp_path / 'v.db', policy_factory=_factory(tiny_checkpoint),
               tls_cert=cert, tls_key=key) as s:
    channel = grpc.secure_channel(s.endpoint, grpc.ssl_channel_credentials(cert.read_bytes()))
    stub = vizier_service_pb2_grpc.VizierServiceStub(channel)
    req = vizier_service_pb2.CreateStudyRequest(parent='owners/me')
    req.study.display_name = 'tls'
    req.study.study_spec.CopyFrom(_config().to_proto())
    created = _bounded(stub.CreateStudy, req)
    assert created.display_name == 'tls'
    got = _bounded(stub.GetStudy, vizier_service_pb2.GetStudyRequest(name=created.name))
    assert got.study_spec.algorithm == 'OMNIPRED' 
    # The same port refuses plain gRPC.
    plain = vizier_service_pb2_grpc.VizierServiceStub(grpc.insecure_channel(s.endpoint))
    with pytest.raises(grpc.RpcError):
      _bounded(plain.GetStudy, vizier_service_pb2.GetStudyRequest(name=created.name), timeout=10)


def test_tls_needs_both_files(tmp_path):
  with pytest.raises(ValueError, match='TLS needs both --tls-cert and --tls-key'):
    Service(database=tmp_path / 'v.db', tls_cert=tmp_path / 'c.pem')


def test_successive_seed_suggestions_spread_like_one_batch():
  problem = vz.ProblemStatement()
  for i in range(3):
    problem.search_space.root.add_float_param(f'x{i}', -5.0, 5.0)
  problem.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MINIMIZE))

  def designer():
    surrogate = LMSurrogate(problem, StudyInfo.from_problem(problem),
                            regressor=OmniPredRegressor.from_scratch(TINY))
    return OmniPredDesigner(problem, seed=0, config=OmniPredDesignerConfig(num_seed_trials=10),
                            surrogate=surrogate)

  def min_distance(suggestions):
    unit = CandidateSpace(problem.search_space).to_unit(suggestions)
    d = np.linalg.norm(unit[:, None] - unit[None], axis=-1)
    return d[np.triu_indices(len(unit), 1)].min()

  batch = designer().suggest(8)
  one_by_one, d = [], designer()
  for i in range(8):
    s = d.suggest(1)[0]
    one_by_one.append(s)
    d.update(vza.CompletedTrials([]), vza.ActiveTrials([s.to_trial(i + 1)]))
  assert min_distance(one_by_one) >= 0.8 * min_distance(batch)


@pytest.mark.parametrize('content, message', [
    (b'', 'is empty'),
    (b'not a checkpoint at all\n', 'torch.load could not read it'),
    (os.urandom(4096), 'torch.load could not read it'),
])
def test_bad_checkpoints_name_the_file_and_never_advise_unsafe_loading(tmp_path, content,
                                                                      message):
  path = tmp_path / 'bad.pt'
  path.write_bytes(content)
  with pytest.raises(ValueError, match=message) as err:
    OmniPredRegressor.from_pretrained(path)
  assert str(path) in str(err.value) and 'weights_only=False' not in str(err.value)
  with pytest.raises((ValueError, FileNotFoundError), match='bad.pt|missing.pt'):
    LMSurrogate(_config(), StudyInfo(),
                config=LMSurrogateConfig(checkpoint=str(path)))


def test_a_missing_or_damaged_checkpoint_fails_when_configured(tmp_path):
  with pytest.raises(FileNotFoundError, match='missing.pt does not exist'):
    LMSurrogateConfig(checkpoint=str(tmp_path / 'missing.pt'))
  path = tmp_path / 'damaged.pt'
  torch.save({'format': checkpoints.FORMAT, 'model_config': ModelConfig().to_dict(),
              'state_dict': {'nope': torch.zeros(1)}}, path)
  with pytest.raises(ValueError, match='damaged.pt is a damaged'):
    OmniPredRegressor.from_pretrained(path)


def test_explain_refuses_values_whose_squares_overflow():
  from vizier_omnipred.symbolic.explain import explain  # pylint: disable=g-import-not-at-top
  x = np.linspace(1, 2, 20) * 1e307
  with pytest.raises(ValueError, match=r"Input 'x0' reaches 2e\+307.*divide by 1e307"):
    explain(x, np.arange(20.0))


# --- Round two: bounded deadlines, prompt shutdown, requests that do not fit, clear errors ---

def test_a_hung_call_fails_at_its_deadline():
  start = time.monotonic()
  with pytest.raises(Hung, match='within 1 s'):
    _bounded(time.sleep, 8, timeout=1)
  assert time.monotonic() - start < 2


class _SlowSurrogate:
  """Conditioning takes SLOW_S: a suggestion that is still computing when SIGTERM comes."""

  SLOW_S = 120

  def condition(self, parameters, y, *, time_budget_s=None):
    time.sleep(self.SLOW_S)
    return {}

  def sample(self, parameters, num_samples, *, seed):
    return np.zeros((len(parameters), num_samples))


def _slow_factory():
  return OmniPredPolicyFactory(
      config=OmniPredDesignerConfig(num_seed_trials=3, num_candidates=16, num_samples=4),
      surrogate_factory=lambda problem, info: _SlowSurrogate())


def test_sigterm_with_a_suggestion_in_flight_exits_within_the_grace_period(tmp_path):
  import portpicker  # pylint: disable=g-import-not-at-top
  from designers.serving import SHUTDOWN_GRACE_S  # pylint: disable=g-import-not-at-top
  db, port = tmp_path / 'v.db', portpicker.pick_unused_port()
  code = ('from designers.serving import Service, run_until_signal;'
          'from tests.test_faults import _slow_factory;'
          f's = Service(port={port}, database={str(db)!r}, policy_factory=_slow_factory());'
          'print("ready", flush=True); run_until_signal(s)')
  env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
  proc = subprocess.Popen([sys.executable, '-c', code], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  try:
    assert _bounded(proc.stdout.readline) == 'ready\n'
    clients.environment_variables.server_endpoint = f'localhost:{port}'
    study = clients.Study.from_study_config(_config(), owner='me', study_id='slow')
    for _ in range(3):  # the seed phase is quick
      _bounded(_cycle, study, 'w0')
    answers = []

    def suggest():  # its answer is the server going away
      try:
        _cycle(study, 'w0')
      except Exception as e:  # pylint: disable=broad-except
        answers.append(e)
    threading.Thread(target=suggest, daemon=True).start()
    deadline = time.monotonic() + DEADLINE_S
    while _open_operations(db) == 0 and time.monotonic() < deadline:
      time.sleep(0.01)
    assert _open_operations(db) == 1  # the slow suggestion is in flight
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert _bounded(proc.wait, timeout=SHUTDOWN_GRACE_S + 10) == 0
    assert time.monotonic() - start < SHUTDOWN_GRACE_S + 5 < _SlowSurrogate.SLOW_S
  finally:
    proc.kill()


def test_a_requested_trial_outside_the_space_does_not_block_its_client(service):
  study = clients.Study.from_study_config(_config(), owner='me', study_id='extra')
  study.request(vz.TrialSuggestion(parameters={'x0': 1.0, 'x1': 2.0, 'opt': 'adam',
                                               'extra': 3.0}))
  for _ in range(3):
    (trial,) = _bounded(lambda: list(study.suggest(count=1, client_id='w0')))
    assert 'extra' not in trial.parameters
    trial.complete(vz.Measurement({'loss': _loss(trial.parameters)}))
  trials = {t.id: t for t in study.trials().get()}
  unfit = [t for t in trials.values() if t.infeasible]
  assert len(unfit) == 1 and 'extra' in unfit[0].infeasibility_reason
  assert sum(not t.infeasible for t in trials.values()) == 3


def test_a_study_without_a_metric_is_refused_naming_it(service):
  import grpc  # pylint: disable=g-import-not-at-top
  config = svz.StudyConfig(algorithm='OMNIPRED')
  config.search_space.root.add_float_param('x0', -5.0, 5.0)
  with pytest.raises(grpc.RpcError, match="'nometric' has no metric"):
    _bounded(lambda: clients.Study.from_study_config(config, owner='me', study_id='nometric'))


@pytest.mark.parametrize('count', [0, -1])
def test_a_suggestion_count_below_one_is_refused(service, count):
  import grpc  # pylint: disable=g-import-not-at-top
  study = clients.Study.from_study_config(_config(), owner='me', study_id=f'count{count + 1}')
  with pytest.raises(grpc.RpcError, match=f'suggestion_count must be at least 1, got {count}'):
    _bounded(lambda: list(study.suggest(count=count, client_id='w0')))


def test_a_tls_key_that_does_not_match_its_certificate_names_both_files(tmp_path):
  files = {}
  for name in ('a', 'b'):
    files[name] = (tmp_path / f'{name}.key', tmp_path / f'{name}.crt')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout',
                    files[name][0], '-out', files[name][1], '-days', '1', '-subj', '/CN=localhost'],
                   check=True, capture_output=True)
  with pytest.raises(ValueError, match=r'TLS key .*b\.key does not match certificate .*a\.crt'):
    Service(database=tmp_path / 'v.db', tls_cert=files['a'][1], tls_key=files['b'][0])


def test_a_read_only_database_is_refused_at_start_naming_the_file(tmp_path, tiny_checkpoint):
  db = tmp_path / 'v.db'
  with Service(database=db, policy_factory=_factory(tiny_checkpoint)):
    pass
  db.chmod(0o444)
  with pytest.raises(ValueError, match=f'The database {db} is read-only'):
    Service(database=db, policy_factory=_factory(tiny_checkpoint))


def test_a_corrupt_database_is_refused_at_start_naming_the_file(tmp_path, tiny_checkpoint):
  db = tmp_path / 'v.db'
  db.write_bytes(b'this is not sqlite' * 100)
  with pytest.raises(ValueError, match=f'The database {db} cannot be opened'):
    Service(database=db, policy_factory=_factory(tiny_checkpoint))
  assert db.read_bytes() == b'this is not sqlite' * 100  # nothing lost


class _CountingFactory(OmniPredPolicyFactory):
  """Counts the server's Suggest calls into Pythia (it asks its factory on every one)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.calls = 0

  def __call__(self, *args, **kwargs):
    self.calls += 1
    return super().__call__(*args, **kwargs)


def test_workers_arriving_together_are_served_from_one_batch(tmp_path, tiny_checkpoint):
  factory = _CountingFactory(
      config=OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=8),
      surrogate_factory=LMSurrogate.factory(LMSurrogateConfig(checkpoint=tiny_checkpoint)))
  with Service(database=tmp_path / 'v.db', policy_factory=factory) as s:
    clients.environment_variables.server_endpoint = s.endpoint
    study = clients.Study.from_study_config(_config(), owner='me', study_id='batch')
    for _ in range(3):
      _bounded(_cycle, study, 'seed')
    factory.calls = 0
    _workers_at_once(study, 8, 2)
    done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
    assert len(done) == 3 + 16 and len({parameter_key(t.parameters) for t in done}) == 19
    assert factory.calls < 16  # queued calls were served from another's batch
