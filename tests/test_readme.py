"""The README's Python example runs as written, with the shipped checkpoint."""

import pathlib
import re
import subprocess
import sys

import pytest

from vizier_omnipred import checkpoints

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'


def _first_python_block() -> str:
  return re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)[0]


@pytest.mark.skipif(not checkpoints.SHIPPED.exists(), reason='no shipped checkpoint')
def test_regressor_example_gives_positive_rank_correlation(capsys):
  exec(compile(_first_python_block(), 'README.md', 'exec'), {})  # pylint: disable=exec-used
  rho = float(capsys.readouterr().out.strip().splitlines()[-1])
  assert rho > 0.9  # the README says 0.99


def test_shipped_checkpoint_is_small_and_loads():
  assert checkpoints.SHIPPED.exists(), 'the package must ship its pretrained checkpoint'
  assert checkpoints.SHIPPED.stat().st_size < 25 * 2**20
  from vizier_omnipred import OmniPredRegressor  # pylint: disable=g-import-not-at-top
  reg = OmniPredRegressor.from_pretrained()
  assert reg.card['steps'] > 0 and 'train_config' in reg.card


@pytest.mark.skipif(not checkpoints.SHIPPED_SYMBOLIC.exists(), reason='no shipped checkpoint')
def test_explain_example_prints_the_law(capsys):
  block = next(b for b in re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
               if 'explain(' in b)
  exec(compile(block, 'README.md', 'exec'), {})  # pylint: disable=exec-used
  out = capsys.readouterr().out
  assert out.startswith('energy = 0.5*mass*speed**2'), out
  assert 'held-out 1.0000' in out


def test_shipped_checkpoints_stay_under_25_mb_together():
  total = sum(p.stat().st_size for p in checkpoints.SHIPPED.parent.glob('*.pt'))
  assert total < 25 * 2**20


@pytest.mark.skipif(not checkpoints.SHIPPED.exists(), reason='no shipped checkpoint')
def test_conditional_example_suggests_exactly_the_active_parameters():
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  from designers import OmniPredDesigner  # pylint: disable=g-import-not-at-top
  block = next(b for b in re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
               if 'select_values' in b)
  scope = {'vz': vz, 'OmniPredDesigner': OmniPredDesigner}
  exec(compile(block, 'README.md', 'exec'), scope)  # pylint: disable=exec-used
  designer = scope['designer']
  for trial_id in range(1, 9):
    trial = designer.suggest(1)[0].to_trial(trial_id)
    p = {k: v.value for k, v in trial.parameters.items()}
    expected = {'model'} | ({'C', 'kernel'} | ({'degree'} if p.get('kernel') == 'poly' else set())
                            if p['model'] == 'svm' else {'max_depth'})
    assert set(p) == expected, p
    trial.complete(vz.Measurement(metrics={'error': len(p) + p.get('C', 0.0) / 1e3}))
    designer.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
  assert trial.metadata.ns('omnipred')['phase'] == 'model'


@pytest.mark.skipif(not checkpoints.SHIPPED.exists(), reason='no shipped checkpoint')
def test_optuna_example_finds_a_good_family_with_the_shipped_model(capsys):
  block = next(b for b in re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
               if 'OmniPredSampler(seed=0))' in b)
  scope = {}
  exec(compile(block.replace('n_trials=40', 'n_trials=12'), 'README.md', 'exec'), scope)  # pylint: disable=exec-used
  study = scope['study']
  assert len(study.trials) == 12
  assert study.best_value < 0.5  # the svm branch, within a decade of C = 10
  assert 'family' in capsys.readouterr().out


def test_the_readme_stays_a_users_readme():
  """At most ~350 lines: the measurements live in benchmarks/RESULTS.md, the reasons in
  docs/design.md."""
  assert len(README.read_text().splitlines()) <= 350


def test_the_program_has_every_command_and_the_model_side_runs_alone(capsys):
  from designers import cli  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit):
    cli.main(['--help'])
  assert '{pretrain,explain,explain-pretrain,serve,demo}' in capsys.readouterr().out
  # What torchrun -m starts on each rank: the model's commands, no Vizier designer imported.
  code = ('import sys; from vizier_omnipred import cli\n'
          'try: cli.main(["--help"])\nexcept SystemExit: pass\n'
          'print(sorted(m for m in sys.modules if m.split(".")[0] == "designers"))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert out.stdout.strip().endswith('[]')
