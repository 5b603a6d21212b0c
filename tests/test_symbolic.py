"""Symbolic regression: formulas, vocabulary, grammar, generator, model, BFGS, explain, CLI."""

import math

import attrs
import numpy as np
import pytest
import sympy
import torch
from vizier import pyvizier as vz

from vizier_omnipred import checkpoints
from vizier_omnipred.cli import main as cli_main
from vizier_omnipred.symbolic.explain import (ExplainConfig, explain, explain_trials,
                                              in_raw_inputs, r2_score, refine_constants)
from vizier_omnipred.symbolic.expressions import Formula, is_complete
from vizier_omnipred.symbolic.generator import GeneratorConfig, generate
from vizier_omnipred.symbolic.model import SymbolicConfig, SymbolicModel, load_pretrained
from vizier_omnipred.symbolic.trainer import SymbolicTrainConfig, train
from vizier_omnipred.symbolic.vocabulary import Vocabulary

TINY = SymbolicConfig(d_model=32, num_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64,
                      slot_dim=4)
needs_shipped = pytest.mark.skipif(not checkpoints.SHIPPED_SYMBOLIC.exists(),
                                   reason='no shipped symbolic checkpoint')


def test_formula_evaluates_prefix_order_and_constants():
  x = np.array([[1.0, 2.0], [3.0, 4.0]])
  f = Formula(('sub', 'mul', 'C', 'x0', 'div', 'x1', 'C'), (2.0, 4.0))  # 2*x0 - x1/4
  np.testing.assert_allclose(f.evaluate(x), [1.5, 5.0])
  c = torch.tensor([2.0, 4.0], dtype=torch.float64)
  np.testing.assert_allclose(f.evaluate_torch(torch.as_tensor(x), c).numpy(), [1.5, 5.0])
  a, b = sympy.symbols('a b', real=True)
  assert sympy.simplify(f.to_sympy(['a', 'b']) - (2 * a - b / 4)) == 0
  assert is_complete(('add', 'x0', 'x1')) and not is_complete(('add', 'x0'))
  with pytest.raises(ValueError, match='Not a complete prefix formula'):
    Formula(('add', 'x0'))
  with pytest.raises(ValueError, match='2 constant slots but 1 values'):
    Formula(('add', 'C', 'C'), (1.0,))
  with pytest.raises(ValueError, match="Unknown formula token 'pow'"):
    Formula(('pow', 'x0', 'x0'))


def test_undefined_values_are_non_finite_not_errors():
  f = Formula(('log', 'x0'))
  y = f.evaluate(np.array([[-1.0], [math.e]]))
  assert np.isnan(y[0]) and y[1] == pytest.approx(1.0)


def test_generator_is_deterministic_valid_and_whitened():
  cfg = GeneratorConfig()
  vocab = cfg.vocabulary
  for seed in range(40):
    a, b = generate(seed, cfg), generate(seed, cfg)
    assert a.formula == b.formula and np.array_equal(a.x, b.x)
    assert np.all(np.isfinite(a.y)) and np.max(np.abs(a.y)) <= cfg.max_abs_y
    assert cfg.min_points <= len(a.y) <= cfg.max_points
    np.testing.assert_allclose(a.x.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(a.x.std(0), 1, atol=1e-9)
    assert a.formula.inputs == set(range(a.x.shape[1]))  # every input is used
    assert len(vocab.encode(a.formula)) <= cfg.max_len
  assert generate(1, cfg).formula != generate(2, cfg).formula


def test_vocabulary_round_trip_and_malformed_sequences():
  vocab = Vocabulary()
  for seed in range(50):
    f = generate(seed).formula
    back = vocab.decode(vocab.encode(f))
    assert back.tokens == f.tokens
    np.testing.assert_allclose(back.constants, f.constants, rtol=1e-9)  # 2-digit constants
  f = Formula(('mul', 'C', 'x0'), (3.14159,))
  assert vocab.decode(vocab.encode(f)).constants == (3.1,)
  with pytest.raises(ValueError, match='Malformed constant'):
    vocab.decode([vocab.index('C+'), vocab.index('x0'), vocab.index('M10')])
  with pytest.raises(ValueError, match="beyond this vocabulary's max_dim=3"):
    vocab.encode(Formula(('x5',)))


def test_grammar_constrained_sampling_always_parses_within_limits():
  torch.manual_seed(0)
  model = SymbolicModel(TINY).eval()  # untrained: only the grammar keeps samples valid
  gen = torch.Generator().manual_seed(0)
  rng = np.random.default_rng(0)
  for dim in (1, 2, 3):
    x = rng.normal(size=(20, dim))
    formulas = model.sample(x, x.sum(1), 16, generator=gen)
    assert len(formulas) == 16
    for f in formulas:
      assert f.inputs <= set(range(dim))  # never an input the data does not have
      assert len(model.vocab.encode(f)) <= TINY.generator.max_len
  assert len(model.sample(x, x.sum(1), 5, temperature=0.0)) == 1
  with pytest.raises(ValueError, match='reads at most 3 inputs'):
    model.sample(rng.normal(size=(10, 4)), np.zeros(10), 2)


def test_bfgs_refines_constants_from_a_rough_start():
  rng = np.random.default_rng(0)
  x = rng.uniform(-2, 2, (60, 1))
  y = 2.5 * np.sin(1.3 * x[:, 0]) + 0.7
  rough = Formula(('add', 'mul', 'C', 'sin', 'mul', 'C', 'x0', 'C'), (2.0, 1.0, 0.0))
  assert r2_score(y, rough.evaluate(x)) < 0.95
  fine = refine_constants(rough, x, y, max_iter=200)
  np.testing.assert_allclose(fine.constants, (2.5, 1.3, 0.7), rtol=1e-4)
  assert r2_score(y, fine.evaluate(x)) > 0.999999


def test_rewriting_a_whitened_formula_in_raw_inputs_is_exact():
  rng = np.random.default_rng(1)
  x = rng.uniform(3, 9, (30, 2))
  mean, std = x.mean(0), x.std(0)
  f = generate(7, GeneratorConfig(max_dim=2)).formula
  if f.inputs != {0, 1}:
    f = Formula(('add', 'x0', 'mul', 'C', 'x1'), (0.5,))
  z = (x - mean) / std
  raw = in_raw_inputs(f, mean, std, y_scale=100.0)
  np.testing.assert_allclose(raw.evaluate(x), 100.0 * f.evaluate(z), rtol=1e-9)


@pytest.mark.parametrize('x, y, names, match', [
    (np.ones((10, 2)), np.ones(9), None, 'x has 10 rows but y has 9'),
    (np.arange(20.0).reshape(10, 2), np.ones(10), None, 'y is constant'),
    (np.arange(40.0).reshape(10, 4), np.arange(10.0), list('abcd'),
     r'at most 3 inputs; got 4 \(a, b, c, d\)'),
    (np.where(np.arange(20).reshape(10, 2) == 7, np.nan, 1.0), np.arange(10.0), ['lr', 'wd'],
     r"Input 'wd' is not finite in row 3"),
    (np.arange(10.0), np.r_[np.arange(9.0), np.inf], None, 'y is not finite in row 9'),
    (np.arange(3.0), np.arange(3.0), None, 'at least 5 points'),
])
def test_explain_rejects_bad_data_naming_the_culprit(x, y, names, match):
  with pytest.raises(ValueError, match=match):
    explain(x, y, names, model=SymbolicModel(TINY).eval())


def test_explain_reports_a_failed_fit_instead_of_a_formula():
  torch.manual_seed(0)
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, (40, 2))
  y = rng.normal(size=40)  # noise: no formula generalises
  result = explain(x, y, ['a', 'b'], model=SymbolicModel(TINY).eval(),
                   config=ExplainConfig(num_samples=4))
  assert not result.fits
  assert result.r2_test is not None and result.r2_test < 0.9
  assert str(result).startswith('No formula fits.') and 'below the threshold 0.9' in str(result)
  assert result.candidates >= 1


def _study(feasible_y, extra_trials=()):
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('mass', 1.0, 5.0)
  problem.search_space.root.add_float_param('speed', 1.0, 5.0)
  problem.metric_information.append(vz.MetricInformation('energy', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  trials = []
  for i, (m, v) in enumerate(feasible_y):
    t = vz.Trial(id=i + 1, parameters={'mass': m, 'speed': v})
    t.complete(vz.Measurement(metrics={'energy': 0.5 * m * v * v}))
    trials.append(t)
  return problem, trials + list(extra_trials)


@needs_shipped
def test_explain_finds_kinetic_energy_from_a_study_and_counts_dropped_trials():
  rng = np.random.default_rng(0)
  bad = vz.Trial(id=99, parameters={'mass': 2.0, 'speed': 2.0})
  bad.complete(vz.Measurement(), infeasibility_reason='diverged')
  problem, trials = _study(rng.uniform(1, 5, (40, 2)), [bad])
  result = explain_trials(problem, trials)
  assert result.fits and result.r2_test > 0.99, result
  assert result.names == ('mass', 'speed') and 'mass' in result.formula
  assert '1 infeasible or incomplete trials left out' in result.message
  x = np.array([[2.0, 3.0]])
  assert result.predict(x)[0] == pytest.approx(9.0, rel=1e-3)


def test_explain_trials_refuses_categorical_and_unknown_names():
  problem, trials = _study([(1.0, 2.0)] * 6)
  problem.search_space.root.add_categorical_param('optimizer', ['adam', 'sgd'])
  with pytest.raises(ValueError, match="Parameter 'optimizer' is categorical"):
    explain_trials(problem, trials, model=SymbolicModel(TINY))
  with pytest.raises(ValueError, match="Parameter 'lr' is not in the study"):
    explain_trials(problem, trials, parameters=['lr'], model=SymbolicModel(TINY))
  with pytest.raises(ValueError, match="Metric 'loss' is not in the study"):
    explain_trials(problem, trials, metric='loss', model=SymbolicModel(TINY))


def test_training_resumes_and_writes_a_loadable_checkpoint(tmp_path):
  cfg = SymbolicTrainConfig(model=TINY, steps=4, batch_size=4, eval_every=2,
                            checkpoint_every=2, eval_samples=8, warmup_steps=1)
  first = train(attrs.evolve(cfg, steps=2), tmp_path, progress=False)
  assert first['steps'] == 2
  summary = train(cfg, tmp_path, progress=False)
  assert summary['steps'] == 4 and [h['step'] for h in summary['history']] == [2, 4]
  assert np.isfinite(summary['final_val_loss'])
  model, card = load_pretrained(tmp_path / 'model.pt')
  assert card['name'] == 'symbolic-small' and model.model_config == TINY
  with pytest.raises(ValueError, match="not a vizier-omnipred/2 checkpoint \(found 'vizier-omnipred-symbolic/1'\)"):
    checkpoints.load(tmp_path / 'model.pt')
  # The loss goes down on a fixed batch: the model can learn.
  torch.manual_seed(0)
  m = SymbolicModel(TINY)
  batch = [generate(s) for s in range(8)]
  opt = torch.optim.Adam(m.parameters(), 3e-3)
  start = float(m.batch_loss(batch))
  for _ in range(30):
    loss = m.batch_loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
  assert float(m.batch_loss(batch)) < 0.7 * start


def test_cli_explain_names_the_bad_csv_cell(tmp_path, capsys):
  path = tmp_path / 'data.csv'
  path.write_text('a,b,y\n1,2,3\n4,oops,6\n')
  assert cli_main(['explain', str(path)]) == 2
  err = capsys.readouterr().err
  assert "line 3, column 'b': 'oops' is not a number" in err
  assert cli_main(['explain', str(path), '--target', 'z']) == 2
  assert "no column 'z'" in capsys.readouterr().err
  assert cli_main(['explain', str(tmp_path / 'missing.csv')]) == 2


@needs_shipped
def test_cli_explain_prints_a_formula_for_a_csv(tmp_path, capsys):
  rng = np.random.default_rng(3)
  x = rng.uniform(1, 5, (40, 2))
  rows = '\n'.join(f'{a},{b},{0.5 * a * b * b}' for a, b in x)
  path = tmp_path / 'energy.csv'
  path.write_text('mass,speed,energy\n' + rows + '\n')
  assert cli_main(['explain', str(path)]) == 0
  out = capsys.readouterr().out
  assert out.startswith('energy = ')
  assert 'held-out 0.99' in out or 'held-out 1.0' in out


def test_cached_greedy_decoding_matches_the_full_forward_pass():
  torch.manual_seed(1)
  model = SymbolicModel(TINY).eval()
  rng = np.random.default_rng(2)
  x = rng.normal(size=(25, 2))
  y = x[:, 0] * x[:, 1]
  formula = model.sample(x, y, 1, temperature=0.0)[0]
  ids = [1] + model.vocab.encode(formula) + [2]  # BOS ... EOS
  from vizier_omnipred.symbolic.model import collate_points, point_arrays
  from vizier_omnipred.symbolic.vocabulary import Grammar
  points = collate_points([point_arrays(x, y, TINY)], 'cpu')
  with torch.no_grad():
    memory, mask = model.encode(points)
    logits = model.decode(torch.tensor([ids[:-1]]), memory, mask)[0]
  grammar = Grammar(model.vocab, torch.tensor([2]), TINY.generator.max_len)
  for t, nxt in enumerate(ids[1:]):
    masked = logits[t].masked_fill(~grammar.mask()[0], float('-inf'))
    assert int(masked.argmax()) == nxt, t
    grammar.step(torch.tensor([nxt]))


@needs_shipped
def test_cli_explain_reads_a_study_from_a_vizier_server(tmp_path, capsys):
  from vizier.service import clients, servers
  from vizier.service import pyvizier as svz
  server = servers.DefaultVizierServer(database_url=f'sqlite:///{tmp_path / "v.db"}')
  try:
    clients.environment_variables.server_endpoint = server.endpoint
    config = svz.StudyConfig(algorithm='RANDOM_SEARCH')
    config.search_space.root.add_float_param('mass', 1.0, 5.0)
    config.search_space.root.add_float_param('speed', 1.0, 5.0)
    config.metric_information.append(
        vz.MetricInformation('energy', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
    study = clients.Study.from_study_config(config, owner='me', study_id='energy')
    for trial in study.suggest(count=30):
      p = trial.parameters
      trial.complete(vz.Measurement({'energy': 0.5 * p['mass'] * p['speed'] ** 2}))
    code = cli_main(['explain', '--server', server.endpoint, '--study', 'me/energy'])
    out = capsys.readouterr().out
    assert code == 0, out  # a formula with held-out R2 >= 0.9 (the law itself: see README test)
    assert out.startswith('energy = ') and 'mass' in out and 'speed' in out, out
  finally:
    server._server.stop(0)  # pylint: disable=protected-access


def test_explain_pretrain_under_torchrun_two_cpu_ranks(tmp_path):
  """The multi-GPU path of the symbolic trainer (DDP through the shared loop) on 2 gloo ranks."""
  import json
  import os
  import pathlib
  import socket
  import subprocess
  import sys
  root = pathlib.Path(__file__).resolve().parents[1]
  with socket.socket() as sock:  # torchrun's static rendezvous needs a real free port
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
  cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={port}', '-m', 'vizier_omnipred.cli', 'explain-pretrain',
         '--out', str(tmp_path), '--steps', '3', '--eval-every', '3', '--d-model', '32',
         '--heads', '2', '--encoder-layers', '1', '--decoder-layers', '1', '--batch-size', '4',
         '--threads', '1', '--quiet']
  env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS='1')
  proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / 'summary.json').read_text())
  assert summary['world_size'] == 2 and summary['steps'] == 3 and summary['examples_per_step'] == 8
  load_pretrained(tmp_path / 'model.pt')


def test_simplified_rounds_every_constant_after_simplifying():
  from vizier_omnipred.symbolic.expressions import simplified
  f = Formula(('mul', 'C', 'sin', 'add', 'mul', 'C', 'x0', 'C'), (2.41512345, 0.0497380499, 1.1309))
  assert simplified(f.to_sympy(['t'])) == '2.415*sin(0.04974*t + 1.131)'
  product = Formula(('mul', 'mul', 'C', 'x0', 'mul', 'C', 'x0'), (0.7071068, 0.7071068))
  assert simplified(product.to_sympy(['t'])) == '0.5*t**2'  # not 0.4999 from rounded factors
