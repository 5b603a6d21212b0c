"""`vizier-omnipred serve`: a Vizier server (or a Pythia-only service) with `OMNIPRED`.

    vizier-omnipred serve --port 6006                      # Vizier + Pythia in one process
    vizier-omnipred serve --pythia-only --port 6007 --vizier-endpoint localhost:6006

In the split deployment an unmodified Vizier server sends the suggestions of every study
whose `StudyConfig.pythia_endpoint` is this service's address here.
"""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import threading
from concurrent import futures

import grpc

from designers.plugin import OmniPredPolicyFactory


def default_database() -> pathlib.Path:
  """SQLite file under the user's data directory (never inside site-packages)."""
  root = os.environ.get('XDG_DATA_HOME') or pathlib.Path.home() / '.local' / 'share'
  return pathlib.Path(root) / 'vizier-omnipred' / 'vizier.db'


class Service:
  """A running server; `stop()` shuts it down. Use as a context manager in tests."""

  def __init__(self, *, host: str = 'localhost', port: int = 0,
               database: str | os.PathLike | None = None, pythia_only: bool = False,
               vizier_endpoint: str | None = None,
               policy_factory: OmniPredPolicyFactory | None = None):
    import portpicker  # pylint: disable=g-import-not-at-top
    port = port or portpicker.pick_unused_port()
    self.policy_factory = policy_factory or OmniPredPolicyFactory()
    self.endpoint = f'{host}:{port}'
    if pythia_only:
      if not vizier_endpoint:
        raise ValueError('--pythia-only needs --vizier-endpoint HOST:PORT of the Vizier server.')
      from vizier._src.service import pythia_service, pythia_service_pb2_grpc  # pylint: disable=g-import-not-at-top
      servicer = pythia_service.PythiaServicer(policy_factory=self.policy_factory)
      servicer.connect_to_vizier(vizier_endpoint)
      # One worker: Pythia runs one suggestion at a time (as Vizier's own split server does).
      self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
      pythia_service_pb2_grpc.add_PythiaServiceServicer_to_server(servicer, self._grpc)
      self._grpc.add_insecure_port(self.endpoint)
      self._grpc.start()
      self.database = None
    else:
      from vizier.service import servers  # pylint: disable=g-import-not-at-top
      path = pathlib.Path(database) if database else default_database()
      path.parent.mkdir(parents=True, exist_ok=True)
      self.database = path
      self._server = servers.DefaultVizierServer(
          host=host, port=port, database_url=f'sqlite:///{path}',
          policy_factory=self.policy_factory)
      self._grpc = self._server._server  # pylint: disable=protected-access

  def stop(self, grace: float = 2.0) -> None:
    self._grpc.stop(grace).wait()

  def __enter__(self) -> 'Service':
    return self

  def __exit__(self, *exc) -> None:
    self.stop()


def serve(args) -> int:
  """Runs until SIGINT/SIGTERM, then shuts down cleanly."""
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
  service = Service(host=args.host, port=args.port, database=args.database,
                    pythia_only=args.pythia_only, vizier_endpoint=args.vizier_endpoint)
  kind = 'Pythia service' if args.pythia_only else 'Vizier server'
  where = f' (database {service.database})' if service.database else ''
  print(f'{kind} with algorithm OMNIPRED listening on {service.endpoint}{where}', flush=True)
  done = threading.Event()
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: done.set())
  done.wait()
  print('shutting down', flush=True)
  service.stop()
  return 0
