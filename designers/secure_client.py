"""The client side of `vizier-omnipred serve` over TLS: a Vizier stub on a secure channel.

Vizier's Python clients open plain channels. `secure_stub` opens a TLS channel that trusts
the server's CA and, for a server run with `--tls-client-ca`, presents the client's own
certificate; Vizier's client classes take the stub as their service:

    stub = secure_stub('host:6006', server_ca='ca.crt',
                       client_cert='client.crt', client_key='client.key')
    study = clients.Study(vizier_client.VizierClient(study_name, 'worker0', service=stub))

The channel is connected before it is handed out, so a refused handshake is reported at
once, in words, rather than as the first real call's bare UNAVAILABLE ("Socket closed": with
TLS 1.3 the server checks the client's certificate after the client's side of the handshake).
"""

from __future__ import annotations

import os
import pathlib
import socket
import threading

import grpc

# How long the first call may take before the server is taken as unreachable.
CONNECT_TIMEOUT_S = 10.0


class HandshakeRefused(ConnectionError):
  """The TLS handshake with the server failed: a certificate was missing or not trusted."""


def _read(path: str | os.PathLike | None, what: str) -> bytes | None:
  if path is None:
    return None
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f'{what} {path} does not exist.')
  return path.read_bytes()


def secure_stub(endpoint: str, *, server_ca: str | os.PathLike,
                client_cert: str | os.PathLike | None = None,
                client_key: str | os.PathLike | None = None,
                timeout_s: float = CONNECT_TIMEOUT_S):
  """-> a `VizierServiceStub` on a TLS channel to `endpoint` (host:port).

  `server_ca`: PEM certificate of the CA that signed the server's certificate (for a
  self-signed server, that certificate itself). `client_cert`/`client_key`: PEM files of the
  client's certificate and key, needed by a server run with `--tls-client-ca`.
  Raises `HandshakeRefused` when the server refuses this client's TLS handshake.
  """
  from vizier._src.service import vizier_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  if (client_cert is None) != (client_key is None):
    raise ValueError('A client certificate needs both client_cert and client_key (PEM files).')
  creds = grpc.ssl_channel_credentials(_read(server_ca, 'server_ca'),
                                       _read(client_key, 'client_key'),
                                       _read(client_cert, 'client_cert'))
  _check_listening(endpoint, timeout_s)
  channel = grpc.secure_channel(endpoint, creds)
  state = _first_outcome(channel, timeout_s)
  if state != grpc.ChannelConnectivity.READY:
    channel.close()
    who = ('without a client certificate' if client_cert is None
           else f'with client certificate {client_cert}')
    if state is None:
      raise ConnectionError(f'No answer from {endpoint} within {timeout_s} s, connecting {who}.')
    raise HandshakeRefused(
        f'TLS handshake with {endpoint} failed, connecting {who}. '
        'A server started with --tls-client-ca admits only clients presenting a certificate '
        f'that CA signed; check too that {server_ca} is the CA of the server certificate.')
  return vizier_service_pb2_grpc.VizierServiceStub(channel)


def _check_listening(endpoint: str, timeout_s: float) -> None:
  """A plain TCP connect, so that a closed port is not reported as a refused handshake."""
  host, _, port = endpoint.rpartition(':')
  try:
    socket.create_connection((host.strip('[]'), int(port)), timeout=timeout_s).close()
  except OSError as e:
    raise ConnectionError(f'No server listens at {endpoint}: {e}') from None


def _first_outcome(channel: grpc.Channel, timeout_s: float):
  """READY or TRANSIENT_FAILURE, whichever the channel reaches first (None: neither within
  `timeout_s`). A refused handshake is a TRANSIENT_FAILURE, reported at once."""
  outcome = []
  reached = threading.Event()

  def watch(state):
    if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
      outcome.append(state)
      reached.set()
  channel.subscribe(watch, try_to_connect=True)
  try:
    reached.wait(timeout_s)
  finally:
    channel.unsubscribe(watch)
  return outcome[0] if outcome else None
