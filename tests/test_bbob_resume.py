"""The BBOB benchmark's resume rule: a raw run counts as done only if it was made with the
weights and configs the designer reads now (a new shipped checkpoint, or a changed default,
must not inherit the old runs)."""
import json
import re

import attrs
import numpy as np
import pytest
from vizier import pyvizier as vz

from benchmarks import designer_zoo, run_store
from designers.acquisition import UCB
from tests.conftest import TINY
from vizier_omnipred import OmniPredRegressor, checkpoints


def _tiny_checkpoint(path, seed=0, card=None):
  checkpoints.save(path, OmniPredRegressor.from_scratch(TINY, seed=seed).base,
                   card=card or {'name': 'tiny'})
  return path


def test_a_raw_run_is_done_only_with_the_weights_and_configs_it_was_made_with(tmp_path):
  other = _tiny_checkpoint(tmp_path / 'other.pt')
  shipped = designer_zoo.signature_of('omnipred')
  candidate = designer_zoo.signature_of('omnipred@new', {'new': str(other)})
  assert shipped and candidate and shipped != candidate
  assert designer_zoo.signature_of('omnipred') == shipped  # deterministic
  assert designer_zoo.signature_of('omnipred_lora') != shipped  # same weights, another config
  # The same weights under another path are the same run.
  copy = tmp_path / 'copy.pt'
  copy.write_bytes(other.read_bytes())
  assert designer_zoo.signature_of('omnipred@c', {'c': str(copy)}) == candidate
  assert designer_zoo.signature_of('random') is None
  with pytest.raises(ValueError, match="reads candidate checkpoint 'gone'"):
    designer_zoo.signature_of('omnipred@gone', {'new': str(other)})

  raw = tmp_path / 'omnipred_Sphere_4_0.json'
  assert not run_store.is_done(raw, shipped)
  raw.write_text(json.dumps({'values': [1.0], 'signature': candidate}))
  assert not run_store.is_done(raw, shipped)  # made with other weights: runs again
  assert run_store.is_done(raw, candidate)
  raw.write_text(json.dumps({'values': [1.0], 'weights': shipped}))  # before configs counted
  assert not run_store.is_done(raw, shipped)
  assert run_store.is_done(raw, None)  # a baseline's run has nothing to differ


def test_the_signature_reads_the_weights_not_the_card(tmp_path):
  """Shipping a run rewrites its card (`model_card --ship`): the shipped file must keep the
  signature of the run it came from, so that runs made with it as a candidate still count;
  other tensors, or a file that is no checkpoint, must not."""
  run = _tiny_checkpoint(tmp_path / 'run.pt', card={'name': 'run', 'steps': 10})
  shipped = _tiny_checkpoint(tmp_path / 'shipped.pt', card={'name': 'shipped', 'steps': 99})
  assert run.read_bytes() != shipped.read_bytes()
  assert checkpoints.weights_digest(run) == checkpoints.weights_digest(shipped)
  assert (designer_zoo.signature_of('omnipred@a', {'a': str(run)})
          == designer_zoo.signature_of('omnipred@b', {'b': str(shipped)}))
  other = _tiny_checkpoint(tmp_path / 'other.pt', seed=1)
  assert checkpoints.weights_digest(other) != checkpoints.weights_digest(run)
  garbage = tmp_path / 'garbage.pt'
  garbage.write_bytes(b'not a checkpoint')
  with pytest.raises(ValueError, match='garbage.pt is not a readable checkpoint'):
    designer_zoo.signature_of('omnipred@g', {'g': str(garbage)})


def test_a_field_that_acts_only_with_prior_studies_leaves_the_signature_alone():
  from designers.designer_config import OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  base, surrogate = OmniPredDesignerConfig(), LMSurrogateConfig()
  text = designer_zoo.config_text(base, surrogate)
  for field in ('num_seed_trials_with_priors', 'num_prior_centres', 'seed_with_prior_best'):
    changed = {'num_seed_trials_with_priors': 2, 'num_prior_centres': 0,
               'seed_with_prior_best': True}[field]
    assert designer_zoo.config_text(
        OmniPredDesignerConfig(**{field: changed}), surrogate) == text, field
  assert designer_zoo.config_text(OmniPredDesignerConfig(num_seed_trials=4), surrogate) != text
  # The surrogate's relevance config: how prior studies are read is left out too.
  from vizier_omnipred.relevance import RelevanceConfig  # pylint: disable=g-import-not-at-top
  relevance = attrs.evolve(surrogate.relevance, prior_studies='pooled', prior_min_trials=2)
  assert designer_zoo.config_text(base, attrs.evolve(surrogate, relevance=relevance)) == text
  assert designer_zoo.config_text(base, attrs.evolve(
      surrogate, relevance=RelevanceConfig(folds=3))) != text
  assert designer_zoo.config_text(base, attrs.evolve(surrogate, relevance=None)) != text


def test_an_optional_field_at_none_leaves_the_signature_alone():
  """A new optional field (None: what the code did before it) reruns nothing; set, it does."""
  from designers.designer_config import OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers.acquisition_search import AcquisitionSearchConfig, EvolutionarySearch  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  surrogate = LMSurrogateConfig()
  text = designer_zoo.config_text(OmniPredDesignerConfig(), surrogate, with_priors=True)
  assert 'prior_studies_until' not in text and 'metric_name' not in text
  assert "'acquisition_with_priors': UCB(quantile=0.6)" in text  # PRIORS_ONLY, signed
  assert designer_zoo.config_text(OmniPredDesignerConfig(prior_studies_until=12), surrogate,
                                  with_priors=True) != text
  assert designer_zoo.config_text(OmniPredDesignerConfig(acquisition_with_priors=None),
                                  surrogate, with_priors=True) != text
  # Nested in a field of the designer's config (the acquisition optimiser's) likewise.
  search = OmniPredDesignerConfig(optimizer=EvolutionarySearch())
  nested = designer_zoo.config_text(search, surrogate)
  assert 'moves' not in nested and 'AcquisitionSearchConfig(generations=3' in nested
  assert designer_zoo.config_text(attrs.evolve(search, optimizer=EvolutionarySearch(
      AcquisitionSearchConfig(moves='continuous'))), surrogate) != nested


def test_the_quadratic_step_signs_only_the_runs_of_studies_it_can_act_on():
  """One objective over continuous parameters: its settings are signed; a mixed, several-
  objective or conditional study's run never takes the step, so they are not."""
  from designers.designer_config import OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  from designers.quadratic_step import QuadraticStepConfig  # pylint: disable=g-import-not-at-top
  surrogate = LMSurrogateConfig()
  lm, step = (OmniPredDesignerConfig(quadratic_step=q) for q in (None, QuadraticStepConfig()))
  assert designer_zoo.config_text(lm, surrogate) != designer_zoo.config_text(step, surrogate)
  assert (designer_zoo.config_text(lm, surrogate, continuous=False)
          == designer_zoo.config_text(step, surrogate, continuous=False))

  def problem(*kinds, objectives=1):
    p = vz.ProblemStatement()
    for i, kind in enumerate(kinds):
      if kind == 'double':
        p.search_space.root.add_float_param(f'x{i}', 0.0, 1.0)
      else:
        p.search_space.root.add_categorical_param(f'c{i}', ['a', 'b'])
    for k in range(objectives):
      p.metric_information.append(vz.MetricInformation(
          f'y{k}', goal=vz.ObjectiveMetricGoal.MINIMIZE))
    return p
  assert designer_zoo.continuous_study(problem('double', 'double'))
  assert not designer_zoo.continuous_study(problem('double', 'categorical'))
  assert not designer_zoo.continuous_study(problem('double', objectives=2))
  assert designer_zoo.continuous_study(problem('double', objectives=2), metric_name='y1')
  mixed, smooth = problem('double', 'categorical'), problem('double')
  for name in ('omnipred', 'omnipred_quadratic_lowest'):  # the step on, as set; and off
    assert (designer_zoo.signature_of(name, problem=mixed)
            == designer_zoo.signature_of('omnipred_lm', problem=mixed)), name
    assert (designer_zoo.signature_of(name, problem=smooth)
            != designer_zoo.signature_of('omnipred_lm', problem=smooth)), name
  assert designer_zoo.signature_of('omnipred', problem=smooth) == designer_zoo.signature_of(
      'omnipred')  # no problem: every field signed, as on BBOB
  assert designer_zoo.signature_of('omnipred_quadratic') == designer_zoo.signature_of('omnipred')


def test_a_run_made_as_another_designer_would_make_it_is_adopted_and_nothing_is_lost(tmp_path):
  """A run is copied from another designer's of the same study when the signatures agree;
  a run it replaces is kept beside it (`run_store.kept_path`), found again by its own."""
  mine, theirs = tmp_path / 'omnipred_Sphere_4_0.json', tmp_path / 'variant_Sphere_4_0.json'
  assert not run_store.adopt(mine, [theirs], 'abc')  # nothing to adopt
  theirs.write_text(json.dumps({'values': [2.0], 'signature': 'abc'}))
  mine.write_text(json.dumps({'values': [1.0], 'signature': 'old'}))
  assert not run_store.adopt(mine, [theirs], 'xyz')  # made otherwise
  assert not run_store.adopt(mine, [theirs], None)  # a baseline's: nothing says how
  assert run_store.adopt(mine, [mine, theirs], 'abc')
  assert json.loads(mine.read_text())['values'] == [2.0]
  kept = run_store.kept_path(mine, 'old')
  assert json.loads(kept.read_text())['values'] == [1.0]  # the replaced run, kept
  assert run_store.stored(mine, 'old') == kept and run_store.stored(mine, 'abc') == mine
  assert run_store.stored(mine, 'new') is None
  assert run_store.adopt(mine, [mine], 'old')  # its own kept run comes back
  assert json.loads(mine.read_text())['values'] == [1.0]
  assert json.loads(run_store.kept_path(mine, 'abc').read_text())['values'] == [2.0]


def test_bbob_tables_read_only_runs_made_as_the_designer_is_now(tmp_path, monkeypatch):
  from benchmarks import bbob  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(run_store, 'RAW', tmp_path)
  monkeypatch.setattr(bbob, 'raw_path', lambda preset, d, f, dim, s: (
      tmp_path / f'{d}_{f}_{dim}_{s}.json'))
  now = designer_zoo.signature_of('omnipred')
  for seed, sig in ((0, now), (1, 'made-otherwise')):
    (tmp_path / f'omnipred_Sphere_4_{seed}.json').write_text(
        json.dumps({'values': [1.0], 'signature': sig}))
  (tmp_path / 'random_Sphere_4_1.json').write_text(json.dumps({'values': [1.0]}))
  runs = bbob.stored_runs('quick', ('omnipred', 'random'))
  assert set(runs) == {('omnipred', 'Sphere', 4, 0), ('random', 'Sphere', 4, 1)}
  # A variant made the same way takes the default's run instead of running it again.
  monkeypatch.setitem(designer_zoo.OMNIPRED_VARIANTS, 'omnipred_same', ({}, {}))
  assert bbob._adopt('quick', ('omnipred_same', 'Sphere', 4, 0), now)
  assert not bbob._adopt('quick', ('omnipred_same', 'Sphere', 4, 1), now)
  assert ('omnipred_same', 'Sphere', 4, 0) in bbob.stored_runs('quick', ('omnipred_same',))


@pytest.mark.parametrize('spec, message', [('new', 'expected TAG=PATH'),
                                           ('a@b=x.pt', 'expected TAG=PATH'),
                                           ('new=missing.pt', 'no checkpoint file at missing.pt')])
def test_a_bad_candidate_flag_is_named(tmp_path, spec, message):
  with pytest.raises(SystemExit, match=message):
    designer_zoo.parse_candidates([spec])
  weights = tmp_path / 'w.pt'
  weights.write_bytes(b'weights')
  assert designer_zoo.parse_candidates([f'new={weights}']) == {'new': str(weights)}


@pytest.mark.parametrize('argv, message', [
    (['--designers', 'omnipred,bogus'], r"unknown \['bogus'\]"),
    (['--aggregate', '--designers', 'omnipred'], 'name it with --table'),
    (['--aggregate', '--designers', 'omnipred', '--table', 'transfer'], 'name it with --table'),
    (['--aggregate', '--seeds', '3,4'], 'name it with --table'),
    (['--designers', 'omnipred', '--cases', 'related,bogus'], r"--cases: unknown \['bogus'\]"),
    (['--aggregate', '--cases', 'related'], 'name it with --table'),
    (['--aggregate', '--checkpoint', 'other.pt'], 'name it with --table'),
])
def test_transfer_flags_that_would_misname_or_overwrite_a_table_are_refused(argv, message, capsys):
  """A designer subset aggregates into a table of its own: never over the whole benchmark's."""
  from benchmarks import transfer  # pylint: disable=g-import-not-at-top
  table = run_store.RESULTS / 'transfer.md'
  before = table.read_text()
  with pytest.raises(SystemExit):
    transfer.main(argv)
  assert re.search(message, capsys.readouterr().err)
  assert table.read_text() == before


def test_a_transfer_table_of_one_case_tables_that_case_alone(tmp_path, monkeypatch):
  """`--aggregate --cases related --table NAME`: seeds run on the related studies only are
  tabled without an unrelated section made of other seeds."""
  from benchmarks import transfer, tuning_tasks  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(transfer, 'RAW', tmp_path / 'raw')
  monkeypatch.setattr(transfer, 'RESULTS', tmp_path / 'results')
  monkeypatch.setattr(tuning_tasks, 'CACHE', tmp_path / 'cache')
  transfer.RAW.mkdir()
  for designer, best in (('omnipred', 0.90), ('omnipred_priors', 0.95)):
    sig = transfer.signature(designer, str(transfer.SHIPPED_TRANSFER))
    for case in transfer.CASES:
      values = [0.5 + (best - 0.5) * k / transfer.TRIALS for k in range(transfer.TRIALS)]
      transfer.raw_path(designer, case, 'transfer_knn_iris', 0).write_text(
          json.dumps({'values': values, 'signature': sig}))
  designers = ('omnipred', 'omnipred_priors')
  both = transfer.aggregate(designers, 'both', (0,))
  related = transfer.aggregate(designers, 'related_only', (0,), ('related',))
  assert '### Prior studies: unrelated' in both
  assert '### Prior studies: related' in related
  assert 'unrelated' not in related
  assert '--cases related --table related_only' in related
  assert (transfer.RESULTS / 'related_only.md').read_text() == related


def test_a_transfer_table_of_other_weights_names_them_in_its_command(tmp_path, monkeypatch):
  """`--checkpoint PATH`: the runs signed with those weights, and the table's command names
  them (a table of weights that are no longer shipped stays regenerable)."""
  from benchmarks import transfer, tuning_tasks  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(transfer, 'RAW', tmp_path / 'raw')
  monkeypatch.setattr(transfer, 'RESULTS', tmp_path / 'results')
  monkeypatch.setattr(tuning_tasks, 'CACHE', tmp_path / 'cache')
  transfer.RAW.mkdir()
  other = str(_tiny_checkpoint(tmp_path / 'other.pt'))
  for designer, best in (('omnipred', 0.90), ('omnipred_priors', 0.95)):
    values = [0.5 + (best - 0.5) * k / transfer.TRIALS for k in range(transfer.TRIALS)]
    transfer.raw_path(designer, 'related', 'transfer_knn_iris', 0).write_text(
        json.dumps({'values': values, 'signature': transfer.signature(designer, other)}))
  designers = ('omnipred', 'omnipred_priors')
  text = transfer.aggregate(designers, 'other', (0,), ('related',), other)
  assert f'--checkpoint {other}' in text and 'omnipred_priors below omnipred' in text
  shipped = transfer.aggregate(designers, 'shipped', (0,), ('related',))
  assert '--checkpoint' not in shipped and 'transfer_knn_iris' not in shipped  # not its runs


def _transfer_in(tmp_path, monkeypatch):
  from benchmarks import transfer, tuning_tasks  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(transfer, 'RAW', tmp_path / 'raw')
  monkeypatch.setattr(tuning_tasks, 'CACHE', tmp_path / 'cache')
  transfer.RAW.mkdir()
  return transfer


def test_a_transfer_run_made_otherwise_is_not_tabled(tmp_path, monkeypatch):
  """Raw transfer runs record the weights and configs (prior-study fields included) that
  made them: a run made otherwise, or one that does not say, is left out of the tables."""
  transfer = _transfer_in(tmp_path, monkeypatch)
  checkpoint = str(transfer.SHIPPED_TRANSFER)
  now = transfer.signature('omnipred_priors', checkpoint)
  assert now != transfer.signature('omnipred_priors_ucb90', checkpoint)  # a PRIORS_ONLY field
  plain = transfer.signature('omnipred', checkpoint)  # sets no priors: their fields not signed
  monkeypatch.setitem(transfer._PRIOR_VARIANTS, 'omnipred',  # pylint: disable=protected-access
                      dict(acquisition_with_priors=UCB(quantile=0.5)))
  assert transfer.signature('omnipred', checkpoint) == plain
  monkeypatch.setitem(transfer._PRIOR_VARIANTS,  # pylint: disable=protected-access
                      'omnipred', dict(num_samples=8))
  assert transfer.signature('omnipred', checkpoint) != plain
  assert transfer.signature('gp_bandit_priors', checkpoint) is None
  values = [0.5] * transfer.TRIALS
  for seed, record in enumerate(({'signature': now}, {'signature': 'made-otherwise'}, {})):
    transfer.raw_path('omnipred_priors', 'related', 'transfer_knn_iris', seed).write_text(
        json.dumps({'values': values, **record}))
  tabled = transfer.regrets(('omnipred_priors',), (0, 1, 2), checkpoint)
  assert sorted(k[3] for k in tabled if k[2] == 'transfer_knn_iris') == [0]


def test_a_transfer_run_made_the_same_way_is_adopted_not_rerun(tmp_path, monkeypatch):
  """A designer whose signature another designer's run of the same study and seed carries
  (a setting made the default) takes that run; a run of another signature is not taken."""
  transfer = _transfer_in(tmp_path, monkeypatch)
  job = ('omnipred_priors', 'related', 'transfer_svm_iris', 'svm', 3)
  source = transfer.raw_path('omnipred_priors_ucb90', 'related', 'transfer_svm_iris', 3)
  source.write_text(json.dumps({'values': [0.9] * transfer.TRIALS, 'signature': 'same'}))
  transfer.raw_path('omnipred_priors_ucb90', 'unrelated', 'transfer_svm_iris', 3).write_text(
      json.dumps({'values': [0.1] * transfer.TRIALS, 'signature': 'same'}))
  assert not transfer._adopt(job, 'other')  # pylint: disable=protected-access
  assert not transfer.raw_path('omnipred_priors', 'related', 'transfer_svm_iris', 3).exists()
  assert transfer._adopt(job, 'same')  # pylint: disable=protected-access
  adopted = transfer.raw_path('omnipred_priors', 'related', 'transfer_svm_iris', 3)
  assert adopted.read_text() == source.read_text()


def test_a_part_of_the_transfer_benchmark_stores_its_runs_and_leaves_the_whole_table(
    tmp_path, monkeypatch, capsys):
  """`--designers/--seeds/--cases/--families`: a part of the benchmark; its runs are kept for
  an `--aggregate` of its own, and transfer.md (every designer's) is not rewritten from it."""
  transfer = _transfer_in(tmp_path, monkeypatch)
  monkeypatch.setattr(transfer, 'RESULTS', tmp_path / 'results')
  sig = transfer.signature('omnipred', str(transfer.SHIPPED_TRANSFER))
  for study in ('transfer_knn_breast_cancer', 'transfer_knn_wine', 'transfer_knn_digits',
                'transfer_knn_iris'):
    transfer.raw_path('omnipred', 'related', study, 0).write_text(
        json.dumps({'values': [0.9] * transfer.TRIALS, 'signature': sig}))
  assert transfer.main(['--designers', 'omnipred', '--seeds', '0', '--cases', 'related',
                        '--families', 'knn']) == 0
  assert 'Runs stored' in capsys.readouterr().out
  assert not (transfer.RESULTS / 'transfer.md').exists()


def test_a_run_made_with_other_weights_is_kept_beside_the_new_one(tmp_path, monkeypatch):
  """When new weights ship, a designer's new run takes the file's place and the old one is
  kept beside it: a table of the old weights (`--checkpoint`) still reads it, and a table of
  the new ones reads the new."""
  transfer = _transfer_in(tmp_path, monkeypatch)
  job = ('omnipred_priors', 'related', 'transfer_svm_iris', 'svm', 3)
  path = transfer.raw_path(*job[:3], 3)
  old = json.dumps({'values': [0.9] * transfer.TRIALS, 'signature': 'old'})
  path.write_text(old)
  new = transfer.raw_path('omnipred_priors@g', 'related', 'transfer_svm_iris', 3)
  new.write_text(json.dumps({'values': [0.1] * transfer.TRIALS, 'signature': 'new'}))
  assert transfer._adopt(job, 'new')  # pylint: disable=protected-access
  assert transfer.stored_run(*job[:3], 3, 'new') == path
  assert path.read_text() == new.read_text()
  kept = transfer.stored_run(*job[:3], 3, 'old')
  assert kept is not None and kept != path and kept.read_text() == old
  assert transfer.stored_run(*job[:3], 3, 'neither') is None


def test_a_designer_without_priors_takes_its_run_of_the_other_case(tmp_path, monkeypatch):
  """Without priors a study's run is the same whichever priors its case gives (rerun value for
  value identical): the unrelated control's no-priors run is the related one's; a designer
  that sets priors never takes a run of the other case."""
  transfer = _transfer_in(tmp_path, monkeypatch)
  related = transfer.raw_path('omnipred', 'related', 'transfer_svm_iris', 3)
  related.write_text(json.dumps({'values': [0.9] * transfer.TRIALS, 'signature': 'same'}))
  transfer.raw_path('omnipred_priors', 'related', 'transfer_svm_iris', 3).write_text(
      json.dumps({'values': [0.1] * transfer.TRIALS, 'signature': 'same'}))
  priors_job = ('omnipred_priors', 'unrelated', 'transfer_svm_iris', 'svm', 3)
  assert not transfer._adopt(priors_job, 'same')  # pylint: disable=protected-access
  job = ('omnipred', 'unrelated', 'transfer_svm_iris', 'svm', 3)
  assert transfer._adopt(job, 'same')  # pylint: disable=protected-access
  adopted = transfer.raw_path('omnipred', 'unrelated', 'transfer_svm_iris', 3)
  assert adopted.read_text() == related.read_text()


def test_the_ellipsoidal_control_reads_misleading_priors_on_the_same_parameters(tmp_path,
                                                                               monkeypatch):
  """The Ellipsoidal studies' control: prior studies of another function over every one of
  the study's parameters (the mixture pools them), whose best trials lie far from its optimum."""
  from benchmarks import transfer_families, tuning_tasks  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(tuning_tasks, 'CACHE', tmp_path / 'cache')
  assert ('unrelated', 'transfer_ellipsoidal_2', 'rastrigin') in transfer_families.cases()
  study = transfer_families.family('ellipsoidal')[2]
  priors = transfer_families.priors('unrelated', study.name, 'rastrigin')
  assert [name for name, _, _ in priors] == [f'transfer_rastrigin_{k}' for k in range(3)]
  names = {p.name for p in study.problem.search_space.parameters}
  related = transfer_families.prior_trials(transfer_families.family('ellipsoidal')[0])
  related_best = min(study.score(t.parameters.as_dict()) for t in related)
  for _, problem, trials in priors:
    assert {p.name for p in problem.search_space.parameters} == names
    assert len(trials) == transfer_families.PRIOR_TRIALS
    best = min(trials, key=lambda t: t.final_measurement.metrics['value'].value)
    assert study.score(best.parameters.as_dict()) > related_best  # a worse start


def test_a_candidate_checkpoint_runs_as_variant_at_tag_beside_the_shipped_weights(
    tmp_path, monkeypatch, capsys):
  """`--candidate new=PATH --designers omnipred_priors@new`: the variant with those weights,
  its runs signed with them and tabled beside (never instead of) the shipped weights' runs."""
  transfer = _transfer_in(tmp_path, monkeypatch)
  monkeypatch.setattr(transfer, 'RESULTS', tmp_path / 'results')
  candidate = _tiny_checkpoint(tmp_path / 'new.pt')
  shipped = str(transfer.SHIPPED_TRANSFER)
  assert transfer.checkpoint_for('omnipred_priors@new', shipped, {'new': str(candidate)}) == str(
      candidate)
  assert transfer.checkpoint_for('omnipred_priors', shipped, {'new': str(candidate)}) == shipped
  signed = {d: transfer.signature(d, transfer.checkpoint_for(d, shipped, {'new': str(candidate)}))
            for d in ('omnipred_priors', 'omnipred_priors@new')}
  assert signed['omnipred_priors'] != signed['omnipred_priors@new']
  for designer, best in (('omnipred_priors', 0.90), ('omnipred_priors@new', 0.95)):
    values = [0.5 + (best - 0.5) * k / transfer.TRIALS for k in range(transfer.TRIALS)]
    transfer.raw_path(designer, 'related', 'transfer_knn_iris', 0).write_text(
        json.dumps({'values': values, 'signature': signed[designer]}))
  designers = ('omnipred_priors@new', 'omnipred_priors')
  text = transfer.aggregate(designers, 'candidate', (0,), ('related',),
                            candidates={'new': str(candidate)})
  assert '| omnipred_priors @ 10 | omnipred_priors @ 20 | omnipred_priors@new @ 10 |' in text
  assert 'omnipred_priors below omnipred_priors@new at 10 trials' in text
  assert f'--candidate new={candidate}' in text
  # A candidate's prior-study variant is measured against no priors on its own weights, when
  # those ran.
  ran = {('omnipred', 'related', 'transfer_knn_iris', 0): None}
  assert transfer._no_priors('omnipred_priors@new', ran) == 'omnipred'  # pylint: disable=protected-access
  ran[('omnipred@new', 'related', 'transfer_knn_iris', 0)] = None
  assert transfer._no_priors('omnipred_priors@new', ran) == 'omnipred@new'  # pylint: disable=protected-access
  assert transfer._no_priors('omnipred_priors', ran) == 'omnipred'  # pylint: disable=protected-access
  with pytest.raises(ValueError, match="candidate checkpoint 'new'"):  # which weights, unsaid
    transfer.regrets(designers, (0,))
  with pytest.raises(SystemExit):
    transfer.main(['--designers', 'omnipred_priors@other', '--aggregate', '--table', 'x'])
  assert "candidate checkpoint 'other'" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    transfer.main(['--designers', 'gp_bandit@new', '--candidate', f'new={candidate}'])
  assert "unknown ['gp_bandit@new']" in capsys.readouterr().err


def test_the_share_below_comes_with_its_interval_over_seeds():
  """A study won on every seed stays won; a coin-flip study moves the share both ways."""
  from benchmarks import transfer  # pylint: disable=g-import-not-at-top
  clear = (np.asarray([0.0, 0.1, 0.2]), np.asarray([0.5, 0.6, 0.7]))
  assert transfer._share_interval([clear, clear]) == (1.0, 1.0)  # pylint: disable=protected-access
  flip = (np.asarray([0.1, 0.5, 0.3]), np.asarray([0.4, 0.2, 0.3]))
  low, high = transfer._share_interval([clear, flip])  # pylint: disable=protected-access
  assert low == 0.5 and high == 1.0


def test_gp_ucb_pe_runs_go_to_the_tracked_archive_and_every_other_designer_s_to_raw():
  """GP-UCB-PE's studies take hours: they are kept where git tracks them, so that a table that
  reads them regenerates on a machine that did not make them; presets that share a store
  (`full`, `quadratic`) read the same files."""
  import subprocess  # pylint: disable=g-import-not-at-top
  from benchmarks import bbob  # pylint: disable=g-import-not-at-top
  gp = bbob.raw_path('full', 'gp_ucb_pe', 'Sphere', 4, 0)
  assert gp == run_store.ARCHIVE / 'pairs50' / 'gp_ucb_pe_Sphere_4_0.json'
  assert bbob.raw_path('quadratic', 'gp_ucb_pe', 'Sphere', 4, 0) == gp
  ours = bbob.raw_path('full', 'omnipred', 'Sphere', 4, 0)
  assert ours == run_store.RAW / 'pairs50' / 'omnipred_Sphere_4_0.json'
  root = run_store.RESULTS.parents[1]
  ignored = lambda p: subprocess.run(['git', 'check-ignore', '-q', str(p.relative_to(root))],
                                     cwd=root, check=False).returncode == 0
  if subprocess.run(['git', 'rev-parse'], cwd=root, check=False).returncode:
    pytest.skip('not a git checkout')
  assert ignored(ours) and not ignored(gp)
