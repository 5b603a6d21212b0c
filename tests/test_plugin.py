"""The real Vizier server on loopback, with OMNIPRED selected through vizier.service.clients."""

import threading

import pytest
from vizier import pyvizier as vz
from vizier.service import clients
from vizier.service import pyvizier as svz
from vizier.service import servers

from designers.omnipred_designer import OmniPredDesignerConfig
from designers.plugin import OmniPredPolicyFactory
from designers.serving import Service
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig
from vizier_omnipred import FineTuneConfig, ModelConfig, OmniPredRegressor, checkpoints

FAST = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=8)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
  path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
  reg = OmniPredRegressor.from_scratch(
      ModelConfig(d_model=32, num_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64))
  checkpoints.save(path, reg.base, card={'name': 'tiny', 'steps': 0})
  return str(path)


def _factory(checkpoint):
  surrogates = LMSurrogate.factory(LMSurrogateConfig(
      checkpoint=checkpoint, lora_from_trials=5, fine_tune=FineTuneConfig(max_steps=4),
      warm_start_steps=2))
  return OmniPredPolicyFactory(config=FAST, surrogate_factory=surrogates)


def _study_config(algorithm='OMNIPRED', pythia_endpoint=None) -> svz.StudyConfig:
  config = svz.StudyConfig(algorithm=algorithm, pythia_endpoint=pythia_endpoint)
  root = config.search_space.root
  root.add_float_param('lr', 1e-4, 1e-1, scale_type=vz.ScaleType.LOG)
  # external_type INTEGER: the client casts the service's doubles back to int.
  config.search_space.add(vz.ParameterConfig.factory(
      'layers', bounds=(1, 6), external_type=vz.ExternalType.INTEGER))
  root.add_categorical_param('act', ['relu', 'tanh'])
  config.metric_information.append(
      vz.MetricInformation('loss', goal=vz.ObjectiveMetricGoal.MINIMIZE))
  return config


def _loss(params) -> float:
  return (params['layers'] - 3) ** 2 + abs(params['lr'] - 0.01) + (params['act'] == 'tanh')


def _work(study, cycles, errors, worker='w0'):
  try:
    for _ in range(cycles):
      for trial in study.suggest(count=1, client_id=worker):
        params = trial.parameters
        assert isinstance(params['layers'], int), params
        trial.complete(vz.Measurement({'loss': _loss(params)}))
  except Exception as e:  # pylint: disable=broad-except
    errors.append(e)


def test_two_concurrent_workers_restart_and_other_algorithms(tmp_path, tiny_checkpoint):
  db = tmp_path / 'vizier.db'
  with Service(database=db, policy_factory=_factory(tiny_checkpoint)) as service:
    clients.environment_variables.server_endpoint = service.endpoint
    study = clients.Study.from_study_config(_study_config(), owner='me', study_id='s1')
    errors = []
    workers = [threading.Thread(target=_work, args=(study, 6, errors, f'w{i}')) for i in range(2)]
    for w in workers:
      w.start()
    for w in workers:
      w.join()
    assert not errors, errors
    done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
    assert len(done) == 12 and len({t.id for t in done}) == 12
    phases = {t.metadata.ns('omnipred').get('phase') for t in done}
    assert phases == {'seed', 'model'}
    assert service.policy_factory.num_cached_studies == 1

    for algorithm in ('RANDOM_SEARCH', 'QUASI_RANDOM_SEARCH'):
      other = clients.Study.from_study_config(_study_config(algorithm), owner='me',
                                              study_id=algorithm.lower())
      _work(other, 2, errors)
      assert not errors
    bad = clients.Study.from_study_config(_study_config('MAGIC'), owner='me', study_id='bad')
    with pytest.raises(Exception, match=r"MAGIC\\?' is not registered.*OMNIPRED, DEFAULT"):
      bad.suggest(count=1)

  # A new server process on the same database continues the study.
  with Service(database=db, policy_factory=_factory(tiny_checkpoint)) as service:
    clients.environment_variables.server_endpoint = service.endpoint
    study = clients.Study.from_owner_and_id('me', 's1')
    assert len(list(study.trials().get())) == 12
    _work(study, 2, errors)
    assert not errors
    done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
    assert len(done) == 14
    last = done[-1].metadata.ns('omnipred')
    assert last['phase'] == 'model'  # the rebuilt designer saw the 12 stored trials


def test_split_deployment_pythia_in_its_own_service(tmp_path, tiny_checkpoint):
  vizier = servers.DefaultVizierServer(database_url=f'sqlite:///{tmp_path / "v.db"}')
  with Service(pythia_only=True, vizier_endpoint=vizier.endpoint,
               policy_factory=_factory(tiny_checkpoint)) as pythia:
    clients.environment_variables.server_endpoint = vizier.endpoint
    study = clients.Study.from_study_config(
        _study_config(pythia_endpoint=pythia.endpoint), owner='me', study_id='split')
    errors = []
    _work(study, 5, errors)
    assert not errors, errors
    done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
    assert len(done) == 5
    assert done[-1].metadata.ns('omnipred')['phase'] == 'model'
    assert pythia.policy_factory.num_cached_studies == 1
  vizier._server.stop(0)  # pylint: disable=protected-access


def test_pythia_only_needs_the_vizier_endpoint():
  with pytest.raises(ValueError, match='--pythia-only needs --vizier-endpoint'):
    Service(pythia_only=True)
