"""Mutual TLS: with `tls_client_ca` the server admits only clients whose certificate that CA
signed. Certificates are made here by openssl; every call runs against a real server on
loopback under a deadline, so a hang fails rather than stalls."""

import pathlib
import subprocess
import time

import grpc
import pytest
from vizier import pyvizier as vz
from vizier._src.service import vizier_client, vizier_service_pb2, vizier_service_pb2_grpc
from vizier.service import clients
from vizier.service import pyvizier as svz

from designers.omnipred_designer import OmniPredDesignerConfig
from designers.plugin import OmniPredPolicyFactory
from designers.secure_client import HandshakeRefused, secure_stub
from designers.serving import Service, insecure_bind_warning, mode
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig
from vizier_omnipred import OmniPredRegressor, checkpoints
from tests.conftest import TINY, bounded

DEADLINE_S = 60  # a call that should succeed
REFUSED_WITHIN_S = 10  # a refused client must hear so well before this


def _openssl(*args):
  subprocess.run(['openssl', *map(str, args)], check=True, capture_output=True)


def _ca(folder: pathlib.Path, name: str) -> tuple[pathlib.Path, pathlib.Path]:
  key, cert = folder / f'{name}.key', folder / f'{name}.crt'
  _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
           '-days', '1', '-subj', f'/CN={name}')
  return key, cert


def _signed(folder: pathlib.Path, name: str, ca: tuple[pathlib.Path, pathlib.Path], *,
            server: bool) -> tuple[pathlib.Path, pathlib.Path]:
  """A key and a certificate for `name`, signed by `ca` (key, cert)."""
  key, csr, cert = folder / f'{name}.key', folder / f'{name}.csr', folder / f'{name}.crt'
  ext = folder / f'{name}.ext'
  ext.write_text('subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' if server
                 else 'extendedKeyUsage=clientAuth\n')
  _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr,
           '-subj', f'/CN={"localhost" if server else name}')
  _openssl('x509', '-req', '-in', csr, '-CA', ca[1], '-CAkey', ca[0], '-CAcreateserial',
           '-out', cert, '-days', '1', '-extfile', ext)
  return key, cert


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
  """A CA with a server and a client certificate; another CA with a client certificate."""
  folder = tmp_path_factory.mktemp('pki')
  ca = _ca(folder, 'ca')
  other = _ca(folder, 'other_ca')
  return dict(ca=ca, server=_signed(folder, 'server', ca, server=True),
              client=_signed(folder, 'client', ca, server=False),
              stranger=_signed(folder, 'stranger', other, server=False))


@pytest.fixture(scope='module')
def mtls_service(pki, tmp_path_factory):
  path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
  checkpoints.save(path, OmniPredRegressor.from_scratch(TINY).base, card={'name': 'tiny'})
  factory = OmniPredPolicyFactory(
      config=OmniPredDesignerConfig(num_seed_trials=2, num_candidates=32, num_samples=4),
      surrogate_factory=LMSurrogate.factory(LMSurrogateConfig(checkpoint=str(path))))
  key, cert = pki['server']
  with Service(database=tmp_path_factory.mktemp('db') / 'v.db', policy_factory=factory,
               tls_cert=cert, tls_key=key, tls_client_ca=pki['ca'][1]) as s:
    yield s


def _stub(endpoint: str, pki: dict, who: str | None):
  """A checked Vizier stub that trusts the server's CA, presenting `who`'s certificate
  (None: no certificate)."""
  key, cert = pki[who] if who else (None, None)
  return secure_stub(endpoint, server_ca=pki['ca'][1], client_cert=cert, client_key=key,
                     timeout_s=REFUSED_WITHIN_S)


def _bounded(fn, timeout):
  return bounded(fn, timeout=timeout)


def _study_config() -> svz.StudyConfig:
  config = svz.StudyConfig(algorithm='OMNIPRED')
  config.search_space.root.add_float_param('x', -1.0, 1.0)
  config.metric_information.append(
      vz.MetricInformation('loss', goal=vz.ObjectiveMetricGoal.MINIMIZE))
  return config


def _create(stub):
  req = vizier_service_pb2.CreateStudyRequest(parent='owners/me')
  req.study.display_name = 'mtls'
  req.study.study_spec.CopyFrom(_study_config().to_proto())
  return stub.CreateStudy(req)


def test_a_client_with_a_certificate_from_the_ca_completes_suggest_and_complete(
    mtls_service, pki):
  assert mtls_service.client_auth and 'mutual TLS' in mode(mtls_service)
  stub = _bounded(lambda: _stub(mtls_service.endpoint, pki, 'client'), DEADLINE_S)
  created = _bounded(lambda: _create(stub), DEADLINE_S)
  study = clients.Study(vizier_client.VizierClient(created.name, 'w0', service=stub))
  for _ in range(3):  # 2 seed trials, then a model-based suggestion
    (trial,) = _bounded(lambda: list(study.suggest(count=1, client_id='w0')), DEADLINE_S)
    x = trial.parameters['x']
    _bounded(lambda: trial.complete(vz.Measurement({'loss': x * x})), DEADLINE_S)
  done = _bounded(lambda: list(study.trials().get()), DEADLINE_S)
  assert [t.status for t in done] == [vz.TrialStatus.COMPLETED] * 3
  assert done[-1].metadata.ns('omnipred')['phase'] == 'model'


@pytest.mark.parametrize('who', [None, 'stranger'], ids=['no_certificate', 'other_ca'])
def test_a_client_without_a_trusted_certificate_is_refused_promptly(mtls_service, pki, who):
  start = time.monotonic()
  with pytest.raises(HandshakeRefused, match='TLS handshake with .* failed') as refused:
    _bounded(lambda: _stub(mtls_service.endpoint, pki, who), REFUSED_WITHIN_S + 5)
  assert time.monotonic() - start < REFUSED_WITHIN_S / 2
  assert '--tls-client-ca' in str(refused.value)
  assert ('without a client certificate' if who is None else 'stranger.crt') in str(refused.value)


def test_a_closed_port_is_not_reported_as_a_handshake(pki):
  import portpicker  # pylint: disable=g-import-not-at-top
  with pytest.raises(ConnectionError, match='No server listens') as refused:
    _bounded(lambda: _stub(f'localhost:{portpicker.pick_unused_port()}', pki, 'client'),
             REFUSED_WITHIN_S + 5)
  assert not isinstance(refused.value, HandshakeRefused)


def test_a_plain_channel_is_refused(mtls_service):
  stub = vizier_service_pb2_grpc.VizierServiceStub(grpc.insecure_channel(mtls_service.endpoint))
  with pytest.raises(grpc.RpcError) as refused:
    _bounded(lambda: stub.ListStudies(vizier_service_pb2.ListStudiesRequest(parent='owners/me'),
                                      timeout=REFUSED_WITHIN_S), REFUSED_WITHIN_S + 5)
  assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.mark.parametrize('host, tls, client_auth, flag', [
    ('0.0.0.0', False, False, '--tls-cert'),
    ('0.0.0.0', True, False, '--tls-client-ca'),
    ('10.1.2.3', True, False, '--tls-client-ca'),
    ('0.0.0.0', True, True, None),
    ('localhost', True, False, None),
    ('127.0.0.1', False, False, None)])
def test_beyond_loopback_the_warning_names_the_flag_that_is_missing(host, tls, client_auth,
                                                                     flag):
  warning = insecure_bind_warning(host, tls=tls, client_auth=client_auth)
  if flag is None:
    assert warning is None
  else:
    assert host in warning and flag in warning


def test_a_client_ca_without_a_server_certificate_is_refused_at_start(tmp_path, pki):
  with pytest.raises(ValueError, match='--tls-client-ca needs --tls-cert'):
    Service(database=tmp_path / 'v.db', tls_client_ca=pki['ca'][1])


@pytest.mark.parametrize('which', ['missing', 'not_pem'])
def test_a_bad_client_ca_file_is_named_at_start(tmp_path, pki, which):
  ca = tmp_path / 'ca.pem'
  if which == 'not_pem':
    ca.write_text('hello')
  key, cert = pki['server']
  with pytest.raises(ValueError, match=f'TLS client CA {ca}'):
    Service(database=tmp_path / 'v.db', tls_cert=cert, tls_key=key, tls_client_ca=ca)
