"""The BBOB benchmark's comparison against GP-UCB-PE's means (`bbob.reference_rows`): its
hours of runs are read from the archive where every seed is there, else from the table the full
preset wrote."""
import json

import numpy as np
import pytest

from benchmarks import bbob

TABLE = """Shifted BBOB, preset `full`: ...

Mean regret at trial 50 by (function, dim); bold = ...

| function | dim | omnipred | omnipred_cross | random | gp_ucb_pe |
|---|---|---|---|---|---|
| Sphere | 4 | **0.0008** | **0.0001** | 0.1245 | 0.0000 |
| Sphere | 8 | **0.0350** | - | 0.3061 | 0.0001 |
| Rastrigin | 4 | **0.0439** | **0.0500** | 0.1738 | 0.0789 |

Log-efficiency against GP-UCB-PE ...
"""


@pytest.fixture
def committed(tmp_path, monkeypatch):
  (tmp_path / 'bbob_full.md').write_text(TABLE)
  monkeypatch.setattr(bbob, 'RESULTS', tmp_path)
  monkeypatch.setattr(bbob, 'raw_path',  # runs (the archive's too) in tmp_path only
                      lambda preset, d, f, dim, s: tmp_path / f'{d}_{f}_{dim}_{s}')


def test_committed_means_reads_one_designer_s_column(committed):
  assert bbob.committed_means('full', 'gp_ucb_pe') == {
      ('Sphere', 4): 0.0, ('Sphere', 8): 0.0001, ('Rastrigin', 4): 0.0789}
  assert bbob.committed_means('full', 'omnipred')[('Sphere', 8)] == 0.035  # bold stripped
  assert bbob.committed_means('full', 'omnipred_cross') == {  # '-': a pair it did not run
      ('Sphere', 4): 0.0001, ('Rastrigin', 4): 0.05}
  with pytest.raises(ValueError):
    bbob.committed_means('full', 'eagle')  # no such column


def test_reference_rows_count_wins_and_read_0_0000_as_the_table_s_resolution(committed):
  regret = {}
  for seed, (s4, s8, r4) in enumerate([(1e-6, 2e-5, 0.1), (3e-6, 4e-5, 0.01)]):
    for (f, dim), value in {('Sphere', 4): s4, ('Sphere', 8): s8, ('Rastrigin', 4): r4}.items():
      regret[('ours', f, dim, seed)] = np.full(50, value)
  lines = bbob.reference_rows(dict(reference=('full', 'gp_ucb_pe')), regret, ['ours'], 50)
  # Sphere 4: below the resolution where the table reads 0.0000: a tie. Sphere 8: 3e-5 < 1e-4,
  # won. Rastrigin 4: 0.055 < 0.0789, won.
  assert lines[-1] == ("ours: wins 2.5 of the 3 pairs it ran against gp_ucb_pe's means (0 of "
                       'them exact); within 10x on 3.')
  assert '| Sphere | 8 | 3.00e-05 (W) | 0.0001 |' in lines
  assert '| Sphere | 4 | 2.00e-06 | 0.0000 |' in lines


def test_reference_rows_leave_out_pairs_not_run_and_bound_0_0000_by_the_resolution(committed):
  regret = {('ours', 'Sphere', 4, 0): np.full(50, 2e-4),
            ('ours', 'Sphere', 8, 0): np.full(50, 2e-3)}
  lines = bbob.reference_rows(dict(reference=('full', 'gp_ucb_pe')), regret, ['ours'], 50)
  assert '| Rastrigin | 4 | - | 0.0789 |' in lines
  # Sphere 4: 2e-4 above a 0.0000 (not within 10x: it could be 0); Sphere 8: 20x 0.0001.
  assert lines[-1] == ("ours: wins 0 of the 2 pairs it ran against gp_ucb_pe's means (0 of "
                       'them exact); within 10x on 0.')


def test_reference_rows_read_archived_runs_exactly_where_every_seed_is_there(committed, tmp_path):
  """Sphere 4-D's three GP seeds are archived: their exact mean (2e-6, not the table's
  0.0000) is the bar; Sphere 8-D has one seed archived, so the table's 0.0001 stays."""
  refs = {(f, dim, s): (0.0, 1.0) for f, dim in (('Sphere', 4), ('Sphere', 8)) for s in range(3)}
  for seed, best in enumerate((1e-6, 2e-6, 3e-6)):
    (tmp_path / f'gp_ucb_pe_Sphere_4_{seed}').write_text(json.dumps({'values': [0.5, best]}))
  (tmp_path / 'gp_ucb_pe_Sphere_8_0').write_text(json.dumps({'values': [1e-9]}))
  assert bbob.archived_means('full', 'gp_ucb_pe', refs, at=2) == {('Sphere', 4): 2e-6}
  assert bbob.archived_means('full', 'omnipred', refs, at=2) == {}  # not an archived designer
  regret = {('ours', 'Sphere', 4, 0): np.full(2, 1.5e-5),
            ('ours', 'Sphere', 8, 0): np.full(2, 4e-5)}
  lines = bbob.reference_rows(dict(reference=('full', 'gp_ucb_pe')), regret, ['ours'], 2, refs)
  assert '| Sphere | 4 | 1.50e-05 | 2.00e-06 |' in lines  # lost, within 10x of the exact mean
  assert '| Sphere | 8 | 4.00e-05 (W) | 0.0001 |' in lines
  assert lines[-1] == ("ours: wins 1 of the 2 pairs it ran against gp_ucb_pe's means (1 of "
                       'them exact); within 10x on 2.')


def test_seed_set_rows_average_each_designer_over_each_named_set_of_seeds():
  regret = {('a', 'Sphere', 4, s): np.full(3, float(s)) for s in range(4)}
  regret[('b', 'Sphere', 4, 0)] = np.full(3, 5.0)
  lines = bbob.seed_set_rows({'0-1': (0, 1), '2-3': (2, 3)}, regret, ['a', 'b'], at=3)
  assert lines[3] == '| designer | seeds 0-1 | seeds 2-3 |'
  assert lines[5] == '| a | 0.5000 (2) | 2.5000 (2) |'
  assert lines[6] == '| b | 5.0000 (1) | - |'  # a set it did not run


def test_rows_without_runs_name_the_committed_rows_this_machine_cannot_remake(
    committed, tmp_path, monkeypatch):
  """A shard's closing aggregate must not drop a committed row whose runs are elsewhere."""
  (tmp_path / 'bbob_quick.md').write_text(
      'Shifted BBOB ...\n\n| designer | studies | regret @ 10 |\n|---|---|---|\n'
      '| omnipred | 4 | 0.1 |\n| random | 4 | 0.2 |\n| gp_ucb_pe | 4 | 0.1 |\n\nWin rate ...\n'
      '| omnipred | random | 4 | 50% | 0.1 | 0.2 |\n')
  monkeypatch.setattr(bbob, 'raw_path',
                      lambda preset, d, f, dim, s: tmp_path / f'{d}_{f}_{dim}_{s}')
  for seed in (0, 1):
    (tmp_path / f'random_Sphere_4_{seed}').write_text('{}')
  (tmp_path / 'gp_ucb_pe_Sphere_4_0').write_text('{}')
  assert bbob.rows_without_runs('quick', ('omnipred', 'random', 'gp_ucb_pe')) == [
      'omnipred', 'random', 'gp_ucb_pe']  # none, 2 and 1 of the 4 studies each row reads
  for f in ('Rastrigin', 'Ellipsoidal'):
    (tmp_path / f'random_{f}_4_0').write_text('{}')
  assert 'random' not in bbob.rows_without_runs('quick', ('omnipred', 'random', 'gp_ucb_pe'))
  assert bbob.rows_without_runs('seed0', ('omnipred',)) == []  # no committed table here


def test_gp_rows_compare_pairs_where_the_gp_ran_every_seed_exactly():
  """The full preset's own GP-UCB-PE runs (seeds 0-2) against OmniPred's five seeds: exact
  means, a pair the GP did not finish left out, a win, a loss within 10x and one beyond."""
  regret = {}
  ours = {('Sphere', 4): 1e-6, ('Sphere', 8): 5e-4, ('Ellipsoidal', 4): 2e-3,
          ('Rastrigin', 4): 0.01}
  gp = {('Sphere', 4): 2e-6, ('Sphere', 8): 1e-4, ('Ellipsoidal', 4): 1e-4,
        ('Rastrigin', 4): 0.02}
  for (f, dim), v in ours.items():
    for s in range(5):
      regret[('omnipred', f, dim, s)] = np.full(50, v)
  for (f, dim), v in gp.items():
    for s in range(3 if f != 'Rastrigin' else 2):  # Rastrigin 4-D: seed 2 never ran
      regret[('gp_ucb_pe', f, dim, s)] = np.full(50, v)
  lines = bbob.gp_rows('full', regret, ['omnipred'], 50)
  rows = [line for line in lines if line.startswith('| ') and 'function' not in line]
  assert [r.split(' | ')[0] for r in rows] == ['| Sphere', '| Sphere', '| Ellipsoidal']
  assert rows[0] == '| Sphere | 4 | 1.00e-06 (W) | 2.00e-06 |'
  assert lines[-1] == ('omnipred: wins 1 of the 3 pairs it ran against gp_ucb_pe\'s means '
                       '(3 of them exact); within 10x on 2.')
  assert bbob.gp_rows('full', {k: v for k, v in regret.items() if k[0] != 'gp_ucb_pe'},
                      ['omnipred'], 50) == []
