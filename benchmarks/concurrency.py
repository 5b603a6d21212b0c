"""Many workers on one study: latency per suggestion through a real server on loopback.

    python -m benchmarks.concurrency                      # 1, 4 and 16 workers, batching off/on

A study (shifted Sphere 4-D) gets 10 completed trials first, so that every measured suggestion
is the model's; then N worker threads each run `--cycles` suggest/evaluate/complete cycles
with their own client id, all at once. Vizier computes one study's suggestions one call at a
time; with `batch_waiting` the server's suggestion also serves the calls queued behind it.
Each (workers, batching) row runs on a fresh server and database with the shipped model.
Writes benchmarks/results/concurrency.md.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import threading
import time

from benchmarks import process_setup

process_setup.prepare()  # before torch loads

import numpy as np  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402
from vizier.service import clients  # noqa: E402

from benchmarks.run_store import RESULTS  # noqa: E402
from benchmarks.server_study import evaluate, study_config  # noqa: E402
from designers.lm_surrogate import LMSurrogate  # noqa: E402
from designers.plugin import OmniPredPolicyFactory  # noqa: E402
from designers.serving import Service  # noqa: E402
from designers.study_runner import shifted_bbob  # noqa: E402

SEED_TRIALS = 10  # completed before the workers start: every measured suggestion is the model's


def run(workers: int, cycles: int, batch: bool, surrogates) -> tuple[list[float], float]:
  """-> (seconds per suggest call, wall seconds for all workers)."""
  exptr = shifted_bbob('Sphere', 4, 0)
  with tempfile.TemporaryDirectory() as tmp, Service(
      database=pathlib.Path(tmp) / 'v.db', batch_waiting=batch,
      policy_factory=OmniPredPolicyFactory(surrogate_factory=surrogates)) as service:
    clients.environment_variables.server_endpoint = service.endpoint
    study = clients.Study.from_study_config(study_config(), owner='bench', study_id='c')
    for _ in range(SEED_TRIALS):
      for t in study.suggest(count=1, client_id='seed'):
        t.complete(vz.Measurement({'bbob_eval': evaluate(exptr, t.parameters)}))
    latencies, lock = [], threading.Lock()

    def work(i):
      for _ in range(cycles):
        t0 = time.perf_counter()
        (trial,) = study.suggest(count=1, client_id=f'w{i}')
        dt = time.perf_counter() - t0
        with lock:
          latencies.append(dt)
        trial.complete(vz.Measurement({'bbob_eval': evaluate(exptr, trial.parameters)}))
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    start = time.perf_counter()
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    wall = time.perf_counter() - start
    done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
    assert len(done) == SEED_TRIALS + workers * cycles, len(done)
  return latencies, wall


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workers', default='1,4,16')
  parser.add_argument('--cycles', type=int, default=3)
  args = parser.parse_args(argv)
  surrogates = LMSurrogate.factory()
  lines = ['Workers on one study through a real server (shifted Sphere 4-D, shipped model, '
           f'{SEED_TRIALS} trials done first, {args.cycles} cycles per worker): seconds per '
           'suggest call.', '',
           '| workers | batch queued calls | p50 s | p95 s | wall s | suggestions / s |',
           '|---|---|---|---|---|---|']
  for workers in (int(w) for w in args.workers.split(',')):
    for batch in (False, True):
      latencies, wall = run(workers, args.cycles, batch, surrogates)
      lines.append(f'| {workers} | {"yes" if batch else "no"} | {np.median(latencies):.2f} | '
                   f'{np.quantile(latencies, 0.95):.2f} | {wall:.1f} | '
                   f'{len(latencies) / wall:.2f} |')
      print(lines[-1], flush=True)
  lines += ['', f'Command: `python -m benchmarks.concurrency --workers {args.workers} --cycles'
            f' {args.cycles}`']
  text = '\n'.join(lines) + '\n'
  RESULTS.mkdir(parents=True, exist_ok=True)
  (RESULTS / 'concurrency.md').write_text(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
