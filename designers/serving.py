"""`vizier-omnipred serve`: a Vizier server (or a Pythia-only service) with `OMNIPRED`.

    vizier-omnipred serve --port 6006                      # Vizier + Pythia in one process
    vizier-omnipred serve --pythia-only --port 6007 --vizier-endpoint localhost:6006
    vizier-omnipred serve --tls-cert server.crt --tls-key server.key   # gRPC over TLS
    vizier-omnipred serve --tls-cert server.crt --tls-key server.key --tls-client-ca ca.crt
                                                           # ... and only clients with a
                                                           # certificate that CA signed

In the split deployment an unmodified Vizier server sends the suggestions of every study
whose `StudyConfig.pythia_endpoint` is this service's address here.

Faults never leave a client waiting: a policy that fails (an unknown algorithm, a problem
the designer refuses, a bug) reaches the client as an error on that call, and the study stays
usable; at start-up, suggestion operations that a killed server left unfinished are closed as
failed, so their clients get an answer on their next call.
"""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import ssl
import sys
import threading
from concurrent import futures
from urllib.parse import urlparse

import grpc

from designers.plugin import OmniPredPolicyFactory

LOOPBACK = ('localhost', '127.0.0.1', '::1', '[::1]')
# Vizier's own server uses a pool of this size; one suggestion holds a worker for its length.
_SERVER_WORKERS = 30
# After SIGTERM, calls in flight get this long before the process exits (a supervisor's grace
# period is commonly 30 s: Kubernetes' default, systemd's is 90 s).
SHUTDOWN_GRACE_S = 5.0


class PolicyFailure(grpc.RpcError):
  """A failure inside the in-process Pythia, as the gRPC error Vizier's service expects.

  Vizier 0.1.24's SuggestTrials closes the suggestion operation with an error only for
  `grpc.RpcError`: any other exception from an in-process policy left the operation open, and
  the client that asked waited on it forever.
  """

  def __init__(self, cause: BaseException):
    super().__init__(f'{type(cause).__name__}: {cause}')
    self.cause = cause

  def __str__(self) -> str:
    return f'{type(self.cause).__name__}: {self.cause}'


class _FailSafePythia:
  """Wraps Vizier's in-process PythiaServicer: every exception becomes a `PolicyFailure`.

  With `waiting_behind` (study name -> SuggestTrials calls queued behind this one), each
  suggestion also computes one suggestion for every queued call: Vizier stores what a policy
  over-delivers as REQUESTED trials and hands those to the next calls without asking again,
  so 16 workers arriving together cost about two suggestion computations, not 16.
  """

  def __init__(self, inner, waiting_behind=None):
    self._inner = inner
    self._waiting_behind = waiting_behind

  def Suggest(self, request, context=None):  # pylint: disable=invalid-name
    queued = 0 if self._waiting_behind is None else self._waiting_behind(
        request.study_descriptor.guid)
    request.count += queued
    try:
      decision = self._inner.Suggest(request, context)
    except grpc.RpcError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # any policy error reaches the client
      logging.exception('Policy failed; returning the error to the client.')
      raise PolicyFailure(e) from e
    if queued:  # Vizier hands suggestions out from the end of the list: best first
      best_first = list(decision.suggestions)[::-1]
      del decision.suggestions[:]
      decision.suggestions.extend(best_first)
    return decision

  def __getattr__(self, name):
    return getattr(self._inner, name)


def insecure_bind_warning(host: str, *, tls: bool, client_auth: bool = False) -> str | None:
  """What `serve` warns when it would expose studies beyond loopback: no TLS (anyone who can
  reach the address), or TLS without client certificates (anyone who trusts the server's
  certificate). None on loopback or with mutual TLS."""
  if host in LOOPBACK or (tls and client_auth):
    return None
  if not tls:
    return (f'Serving on {host} without TLS: anyone who can reach this address can read and '
            'change every study. Pass --tls-cert/--tls-key (and --tls-client-ca to admit only '
            'clients with a certificate your CA signed), or bind localhost.')
  return (f'Serving on {host} over TLS without client certificates: any client that trusts '
          'the server certificate can read and change every study. Pass --tls-client-ca CA.pem '
          'to admit only clients with a certificate that CA signed.')


def check_writable(path: pathlib.Path) -> None:
  """The database file (or, for a new one, its folder) must be writable: a read-only one is
  refused at start-up, naming the file, rather than failing every later write."""
  path.parent.mkdir(parents=True, exist_ok=True)
  target = path if path.exists() else path.parent
  mode = target.stat().st_mode
  if not os.access(target, os.W_OK) or not mode & 0o222:
    what = 'database' if target == path else "database's folder"
    raise ValueError(f'The {what} {target} is read-only: the server writes every study and '
                     'trial there. Make it writable or pass another --database.')


def open_servicer(url: str, path: pathlib.Path | None):
  """Vizier's servicer (with `CheckedVizierServicer`'s checks) on the database at `url`: an
  SQLite file (one that is not an SQLite database is refused naming the file) or any other
  database SQLAlchemy reaches, PostgreSQL for a team (`sql_store`; one it cannot reach is
  refused naming the URL, password hidden)."""
  import sqlalchemy as sqla  # pylint: disable=g-import-not-at-top
  from designers.checked_servicer import CheckedVizierServicer  # pylint: disable=g-import-not-at-top
  from designers import sql_store  # pylint: disable=g-import-not-at-top
  try:
    if sqla.engine.make_url(url).get_backend_name() == 'sqlite':
      return CheckedVizierServicer(database_url=url)
    servicer = CheckedVizierServicer(database_url=None)  # then its datastore, on `url`
    servicer.datastore = sql_store.open_datastore(url)
    return servicer
  except sqla.exc.DatabaseError as e:
    where = path if path is not None else sql_store.redacted(url)
    kind = 'is it an SQLite file written by Vizier?' if path is not None else 'is it running?'
    raise ValueError(f'The database {where} cannot be opened ({e.orig}): {kind} '
                     'Pass another --database.') from None
  except (sqla.exc.ArgumentError, sqla.exc.NoSuchModuleError, ImportError) as e:
    raise ValueError(f'--database {sql_store.redacted(url)} is not a database URL SQLAlchemy '
                     f'can open ({e}); for PostgreSQL install vizier-omnipred[postgres].') from None


def tls_credentials(cert: str | os.PathLike, key: str | os.PathLike,
                    client_ca: str | os.PathLike | None = None) -> grpc.ServerCredentials:
  """Server credentials from PEM files; with `client_ca`, every client must present a
  certificate that CA signed (mutual TLS: the handshake fails otherwise). A missing or
  non-PEM file is named here, not at the first connection."""
  def pem(path, what: str) -> bytes:
    path = pathlib.Path(path)
    if not path.is_file():
      raise ValueError(f'{what} {path} does not exist.')
    data = path.read_bytes()
    if b'-----BEGIN' not in data:
      raise ValueError(f'{what} {path} is not a PEM file (no -----BEGIN line).')
    return data
  pairs = [(pem(key, 'TLS key'), pem(cert, 'TLS certificate'))]
  try:  # gRPC reports a key that does not match as "Failed to bind to address"
    # An empty password: an encrypted key fails here (gRPC cannot read one) instead of
    # OpenSSL prompting for its passphrase on the terminal.
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        cert, key, password=lambda: b'')
  except ssl.SSLError as e:
    raise ValueError(f'TLS key {key} does not match certificate {cert} (or either is not a '
                     'valid PEM file, or the key is encrypted: gRPC reads only plain keys): '
                     f'{e.reason or e}') from None
  if client_ca is None:
    return grpc.ssl_server_credentials(pairs)
  return grpc.ssl_server_credentials(pairs, root_certificates=pem(client_ca, 'TLS client CA'),
                                     require_client_auth=True)


def database_url(database: str | os.PathLike | None) -> tuple[str, pathlib.Path | None]:
  """A path or an SQLAlchemy URL -> (URL, absolute file path or None for a non-file URL).

  `sqlite:////abs/x.db` and `sqlite:///rel/x.db` are URLs (the latter relative to the current
  directory, made absolute here); anything without a scheme is a file path.
  """
  if database is None:
    path = default_database()
  else:
    text = str(database)
    parsed = urlparse(text)
    if parsed.scheme and '://' in text:
      if not parsed.scheme.startswith('sqlite'):
        return text, None
      rest = text.split('://', 1)[1]
      if rest in ('', '/', '/:memory:'):
        return text, None
      path = pathlib.Path(rest[1:] if rest.startswith('/') else rest)
    else:
      path = pathlib.Path(text).expanduser()
  path = path.resolve()
  return f'sqlite:///{path}', path


def recover_interrupted_operations(datastore) -> int:
  """Closes, as failed, the suggestion operations a dead server process left unfinished.

  Vizier hands a client its open operation again on every call; one that no process will
  ever finish would hang that client id forever. Returns how many were closed. Reads the SQL
  datastore's table directly: Vizier's DataStore API lists operations only per client.
  """
  import sqlalchemy as sqla  # pylint: disable=g-import-not-at-top
  from google.longrunning import operations_pb2  # pylint: disable=g-import-not-at-top
  from google.rpc import code_pb2, status_pb2  # pylint: disable=g-import-not-at-top
  table = getattr(datastore, '_suggestion_operations_table', None)
  if table is None:  # not the SQL datastore: nothing persisted across processes
    return 0
  with datastore._lock:  # pylint: disable=protected-access
    rows = list(datastore._connection.execute(sqla.select(table.c.serialized_op)))  # pylint: disable=protected-access
  closed = 0
  for (blob,) in rows:
    op = operations_pb2.Operation.FromString(blob)
    if op.done:
      continue
    op.error.CopyFrom(status_pb2.Status(
        code=code_pb2.Code.ABORTED,
        message='The server stopped while computing this suggestion; ask again.'))
    op.done = True
    datastore.update_suggestion_operation(op)
    closed += 1
  return closed


def default_database() -> pathlib.Path:
  """SQLite file under the user's data directory (never inside site-packages)."""
  root = os.environ.get('XDG_DATA_HOME') or pathlib.Path.home() / '.local' / 'share'
  return pathlib.Path(root) / 'vizier-omnipred' / 'vizier.db'


class Service:
  """A running server; `stop()` shuts it down. Use as a context manager in tests."""

  def __init__(self, *, host: str = 'localhost', port: int = 0,
               database: str | os.PathLike | None = None, pythia_only: bool = False,
               vizier_endpoint: str | None = None,
               policy_factory: OmniPredPolicyFactory | None = None,
               tls_cert: str | os.PathLike | None = None,
               tls_key: str | os.PathLike | None = None,
               tls_client_ca: str | os.PathLike | None = None,
               batch_waiting: bool = True):
    """`database`: a file path or an SQLAlchemy URL (see `database_url`). `tls_cert` and
    `tls_key`: PEM files; with them the port speaks gRPC over TLS only. `tls_client_ca`: a PEM
    CA certificate; with it the server admits only clients whose certificate it signed.
    `batch_waiting`: a study's suggestion also serves the calls queued behind it (see
    `_FailSafePythia`)."""
    import portpicker  # pylint: disable=g-import-not-at-top
    port = port or portpicker.pick_unused_port()
    self.policy_factory = policy_factory or OmniPredPolicyFactory()
    self.endpoint = f'{host}:{port}'
    if (tls_cert is None) != (tls_key is None):
      raise ValueError('TLS needs both --tls-cert and --tls-key (PEM files).')
    if tls_client_ca is not None and tls_cert is None:
      raise ValueError('--tls-client-ca needs --tls-cert and --tls-key: client certificates '
                       'are checked in a TLS handshake.')
    self.tls = tls_cert is not None
    self.client_auth = tls_client_ca is not None
    credentials = (tls_credentials(tls_cert, tls_key, tls_client_ca) if self.tls else None)
    if (warning := insecure_bind_warning(host, tls=self.tls, client_auth=self.client_auth)):
      logging.warning(warning)
    self.recovered_operations = 0
    if pythia_only:
      if not vizier_endpoint:
        raise ValueError('--pythia-only needs --vizier-endpoint HOST:PORT of the Vizier server.')
      from vizier._src.service import pythia_service, pythia_service_pb2_grpc  # pylint: disable=g-import-not-at-top
      servicer = pythia_service.PythiaServicer(policy_factory=self.policy_factory)
      servicer.connect_to_vizier(vizier_endpoint)
      # One worker: Pythia runs one suggestion at a time (as Vizier's own split server does).
      self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
      pythia_service_pb2_grpc.add_PythiaServiceServicer_to_server(servicer, self._grpc)
      self.database = None
    else:
      # What vizier.service.servers.DefaultVizierServer builds, with TLS, recovery of
      # interrupted operations and policy errors that reach the client.
      from vizier._src.service import pythia_service  # pylint: disable=g-import-not-at-top
      from vizier._src.service import vizier_service_pb2_grpc  # pylint: disable=g-import-not-at-top
      url, path = database_url(database)
      if path is not None:
        check_writable(path)
      from designers import sql_store  # pylint: disable=g-import-not-at-top
      self.database = path if path is not None else sql_store.redacted(url)
      self.servicer = open_servicer(url, path)
      self.recovered_operations = recover_interrupted_operations(self.servicer.datastore)
      self.servicer.default_pythia_service = _FailSafePythia(
          pythia_service.PythiaServicer(self.servicer, policy_factory=self.policy_factory),
          self.servicer.waiting_behind if batch_waiting else None)
      self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=_SERVER_WORKERS))
      vizier_service_pb2_grpc.add_VizierServiceServicer_to_server(self.servicer, self._grpc)
    if credentials is not None:
      self._grpc.add_secure_port(self.endpoint, credentials)
    else:
      self._grpc.add_insecure_port(self.endpoint)
    self._grpc.start()

  def stop(self, grace: float = 2.0) -> None:
    self._grpc.stop(grace).wait()

  def __enter__(self) -> 'Service':
    return self

  def __exit__(self, *exc) -> None:
    self.stop()


def mode(service: Service) -> str:
  """Who may connect, in words, for the start-up line."""
  if service.client_auth:
    return 'mutual TLS (only clients with a certificate from --tls-client-ca)'
  if service.tls:
    return 'TLS (any client that trusts the server certificate; no client certificates)'
  return 'plain gRPC (no TLS)'


def serve(args) -> int:
  """Runs until SIGINT/SIGTERM, then shuts down cleanly."""
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
  from designers.prior_finder import TransferConfig  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  factory = OmniPredPolicyFactory(
      surrogate_factory=(LMSurrogate.factory(LMSurrogateConfig(checkpoint=args.checkpoint))
                         if args.checkpoint else None),
      transfer=TransferConfig(auto=args.transfer == 'auto'))
  service = Service(host=args.host, port=args.port, database=args.database,
                    pythia_only=args.pythia_only, vizier_endpoint=args.vizier_endpoint,
                    tls_cert=args.tls_cert, tls_key=args.tls_key,
                    tls_client_ca=args.tls_client_ca, policy_factory=factory)
  kind = 'Pythia service' if args.pythia_only else 'Vizier server'
  where = f'; database {service.database}' if service.database else ''
  print(f'{kind} with algorithm OMNIPRED listening on {service.endpoint} over {mode(service)}'
        f'{where}', flush=True)
  if service.recovered_operations:
    print(f'closed {service.recovered_operations} suggestion operation(s) left unfinished by a'
          ' previous process; their clients get an answer when they ask again', flush=True)
  run_until_signal(service)
  return 0


def run_until_signal(service: Service, grace_s: float = SHUTDOWN_GRACE_S) -> None:
  """Serves until SIGINT or SIGTERM; then calls in flight get `grace_s` to finish and the
  process ends, whatever is still computing (a suggestion abandoned here is closed as failed
  when the server starts again, and its client gets an answer then). Waiting for a slow
  suggestion instead outlives a supervisor's grace period (52-58 s were seen), which then
  kills -9 anyway. Does not return."""
  done = threading.Event()
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: done.set())
  done.wait()
  print(f'shutting down: calls in flight get {grace_s:g} s', flush=True)
  service._grpc.stop(grace_s).wait(grace_s + 1.0)  # pylint: disable=protected-access
  print('stopped', flush=True)
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  # A suggestion still computing holds a worker thread, which the interpreter would join at
  # exit: leave without waiting for it.
  os._exit(0)  # pylint: disable=protected-access
