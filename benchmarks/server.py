"""Server benchmark: OMNIPRED through a real Vizier server on loopback.

    python -m benchmarks.server --latency-trials 30      # server vs designer latency
    python -m benchmarks.server --memory-suggestions 1000 --studies 20

1. Latency: the same study (shifted Sphere 4-D, same seed) run twice in this process: once by
   calling `OmniPredDesigner` directly, once through `vizier.service.clients` against
   `DefaultVizierServer` with `OmniPredPolicyFactory`. Median seconds per suggestion after the
   seed trials, and their ratio.
2. Memory: `--memory-suggestions` suggestions spread round-robin over `--studies` studies in
   one server process; resident memory (RSS) after a warm-up and at the end.
Writes benchmarks/results/server.md and server_memory.png.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

from benchmarks import process_setup

process_setup.prepare()  # before torch loads

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import algorithms as vza  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402
from vizier.service import clients  # noqa: E402

from benchmarks.run_store import RESULTS  # noqa: E402
from benchmarks.server_study import evaluate, study_config  # noqa: E402
from designers.omnipred_designer import OmniPredDesigner  # noqa: E402
from designers.serving import Service  # noqa: E402
from designers.study_runner import shifted_bbob  # noqa: E402
from vizier_omnipred.heap import resident_mb  # noqa: E402



def direct_latency(n: int, seed: int = 0) -> list[float]:
  exptr = shifted_bbob('Sphere', 4, seed)
  designer = OmniPredDesigner(exptr.problem_statement(), seed=seed)
  out = []
  for i in tqdm(range(n), desc='designer directly', dynamic_ncols=True):
    t0 = time.perf_counter()
    s = designer.suggest(1)[0]
    out.append(time.perf_counter() - t0)
    trial = s.to_trial(i + 1)
    trial.complete(vz.Measurement({'bbob_eval': evaluate(exptr, s.parameters.as_dict())}))
    designer.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
  return out


def server_latency(service: Service, n: int, seed: int = 0) -> list[float]:
  exptr = shifted_bbob('Sphere', 4, seed)
  clients.environment_variables.server_endpoint = service.endpoint
  study = clients.Study.from_study_config(study_config(), owner='bench', study_id='latency')
  out = []
  for _ in tqdm(range(n), desc='through the server', dynamic_ncols=True):
    t0 = time.perf_counter()
    trial = next(iter(study.suggest(count=1)))
    out.append(time.perf_counter() - t0)
    trial.complete(vz.Measurement({'bbob_eval': evaluate(exptr, dict(trial.parameters))}))
  return out


def memory_run(service: Service, total: int, num_studies: int) -> list[tuple[int, float]]:
  clients.environment_variables.server_endpoint = service.endpoint
  exptrs = [shifted_bbob('Sphere', 4, s) for s in range(num_studies)]
  studies = [clients.Study.from_study_config(study_config(), owner='bench', study_id=f'mem{s}')
             for s in range(num_studies)]
  trace = []
  for i in tqdm(range(total), desc=f'{num_studies} studies', dynamic_ncols=True):
    k = i % num_studies
    trial = next(iter(studies[k].suggest(count=1)))
    trial.complete(vz.Measurement({'bbob_eval': evaluate(exptrs[k], dict(trial.parameters))}))
    trace.append((i + 1, resident_mb()))
  return trace


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--latency-trials', type=int, default=30)
  parser.add_argument('--memory-suggestions', type=int, default=1000)
  parser.add_argument('--studies', type=int, default=20)
  args = parser.parse_args(argv)
  lines = []
  with tempfile.TemporaryDirectory() as tmp, Service(database=pathlib.Path(tmp) / 'v.db') as service:
    if args.latency_trials:
      direct = direct_latency(args.latency_trials)
      served = server_latency(service, args.latency_trials)
      skip = 5  # seed trials: no model
      d, s = float(np.median(direct[skip:])), float(np.median(served[skip:]))
      lines += ['| path | median s / suggestion (trials 6-%d) |' % args.latency_trials,
                '|---|---|', f'| designer directly | {d:.3f} |', f'| through the server | {s:.3f} |',
                '', f'Server / designer latency: {s / d:.2f}x.', '']
    if args.memory_suggestions:
      trace = memory_run(service, args.memory_suggestions, args.studies)
      warm = trace[min(len(trace) - 1, 2 * args.studies * 5)][1]  # after every study has ~10
      end = trace[-1][1]
      lines += [f'{args.memory_suggestions} suggestions over {args.studies} studies in one '
                f'server process: RSS {warm:.0f} MB after warm-up, {end:.0f} MB at the end '
                f'({(end - warm) / warm:+.1%}); peak {max(r for _, r in trace):.0f} MB.', '']
      plot(trace, warm)
  lines.append(f'Command: `python -m benchmarks.server --latency-trials {args.latency_trials} '
               f'--memory-suggestions {args.memory_suggestions} --studies {args.studies}`')
  text = '\n'.join(lines) + '\n'
  RESULTS.mkdir(parents=True, exist_ok=True)
  (RESULTS / 'server.md').write_text(text)
  print(text)
  return 0


def plot(trace, warm) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 3.5))
  ax.plot([i for i, _ in trace], [r for _, r in trace])
  ax.axhline(warm * 1.2, ls='--', color='grey', label='warm-up RSS + 20%')
  ax.set_xlabel('suggestions served')
  ax.set_ylabel('RSS (MB)')
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(RESULTS / 'server_memory.png', dpi=110)


if __name__ == '__main__':
  sys.exit(main())
