"""The Vizier server on a real PostgreSQL server (pgserver's PostgreSQL 16, started by the
suite): the same guarantees as on SQLite. Two concurrent clients, a kill -9 with a suggestion
in flight, a restart: every completed trial is there and the interrupted client is answered."""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sqla
from vizier import pyvizier as vz
from vizier.service import clients

from designers import sql_store
from designers.candidates import parameter_key
from designers.serving import Service
from tests.conftest import bounded
from tests.test_faults import _config, _cycle, _factory

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEADLINE_S = 60


def _serve(url: str, port: int, checkpoint: str) -> subprocess.Popen:
  code = ('import sys; from designers.serving import Service;'
          'from tests.test_faults import _factory;'
          f's = Service(port={port}, database={url!r}, policy_factory=_factory({checkpoint!r}));'
          'print("ready", flush=True); sys.stdin.read()')
  env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
  proc = subprocess.Popen([sys.executable, '-c', code], env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  line = bounded(proc.stdout.readline, timeout=DEADLINE_S)
  assert line == 'ready\n', proc.stderr.read() if proc.poll() is not None else line
  return proc


class _Operations:
  """Counts the open suggestion operations over one autocommit connection (a suggestion of
  the tiny model takes tens of milliseconds: a poll must take a few)."""

  def __init__(self, url: str):
    self._engine = sql_store.engine_for(url)
    self._con = self._engine.connect().execution_options(isolation_level='AUTOCOMMIT')
    self._query = sqla.text('SELECT serialized_op FROM suggestion_operations')

  def open(self) -> int:
    from google.longrunning import operations_pb2  # pylint: disable=g-import-not-at-top
    rows = self._con.execute(self._query).fetchall()
    return sum(not operations_pb2.Operation.FromString(r[0]).done for r in rows)

  def close(self) -> None:
    self._con.close()
    self._engine.dispose()


def test_two_clients_kill_9_mid_suggest_and_restart_lose_nothing(postgres_url,
                                                                  tiny_checkpoint_file):
  import portpicker  # pylint: disable=g-import-not-at-top
  port = portpicker.pick_unused_port()
  proc = _serve(postgres_url, port, tiny_checkpoint_file)
  try:
    clients.environment_variables.server_endpoint = f'localhost:{port}'
    study = clients.Study.from_study_config(_config(), owner='team', study_id='pg')
    errors = []

    def work(worker):
      try:
        for _ in range(3):
          _cycle(study, worker)
      except Exception as e:  # pylint: disable=broad-except
        errors.append(e)
    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in ('a', 'b')]
    for t in threads:
      t.start()
    for t in threads:
      t.join(timeout=4 * DEADLINE_S)
    assert not errors and not any(t.is_alive() for t in threads), errors
    # A suggestion in flight when the server dies.
    operations = _Operations(postgres_url)
    operations.open()  # imports and connects before the race
    pending = threading.Thread(target=lambda: _cycle(study, 'a'), daemon=True)
    pending.start()
    deadline = time.monotonic() + DEADLINE_S
    while operations.open() == 0 and time.monotonic() < deadline:
      time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert operations.open() == 1  # the server died with it open
    proc = _serve(postgres_url, port, tiny_checkpoint_file)
    assert operations.open() == 0  # closed as failed at start-up
    operations.close()
    study = clients.Study.from_owner_and_id('team', 'pg')
    bounded(_cycle, study, 'a', timeout=DEADLINE_S)  # the interrupted client is answered
    done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
    assert len(done) == 7  # 2 clients x 3 before the kill, 1 after
    assert len({parameter_key(t.parameters) for t in done}) == 7
  finally:
    proc.kill()


def test_a_study_written_on_postgres_reads_back_in_process(postgres_url, tiny_checkpoint_file):
  with Service(database=postgres_url, policy_factory=_factory(tiny_checkpoint_file)) as s:
    clients.environment_variables.server_endpoint = s.endpoint
    study = clients.Study.from_study_config(_config(conditional=True), owner='me', study_id='c')
    for _ in range(4):
      bounded(_cycle, study, 'w', timeout=DEADLINE_S)
    assert 'secret' not in str(s.database)
  with Service(database=postgres_url, policy_factory=_factory(tiny_checkpoint_file)) as s:
    clients.environment_variables.server_endpoint = s.endpoint
    study = clients.Study.from_owner_and_id('me', 'c')
    assert len(list(study.trials().get())) == 4


def test_an_unreachable_database_is_named_without_its_password(tmp_path):
  url = f'postgresql://vizier:secret@/nowhere?host={tmp_path}'
  with pytest.raises(ValueError, match='cannot be opened') as e:
    Service(database=url)
  assert 'nowhere' in str(e.value) and 'secret' not in str(e.value)


def test_a_url_of_a_driver_that_is_not_installed_says_what_to_install():
  with pytest.raises(ValueError, match=r'not a database URL.*\[postgres\]'):
    Service(database='mssql+nosuchdriver://u@h/db')
