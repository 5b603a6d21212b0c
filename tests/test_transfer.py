"""Prior studies in the model's context: the model, the regressor's API and the family prior."""

import attrs
import numpy as np
import pytest
import torch
from scipy import stats

from vizier_omnipred import OmniPredRegressor
from vizier_omnipred.model import OmniPredModel
from vizier_omnipred.regressor import MIXTURE_GRID
from vizier_omnipred.pretraining import growth, trainer
from vizier_omnipred.pretraining.corpus import CorpusConfig
from vizier_omnipred.pretraining.family_prior import FamilyConfig, StudyFamily
from vizier_omnipred.relevance import HeldOutLikelihood, RelevanceConfig, pooled_values
from tests.conftest import TINY

PRIOR_TINY = attrs.evolve(TINY, prior_studies=True, slot_binding=True)
QUERIES = [{'x': 0.1, 'opt': 'adam'}, {'x': 0.5, 'opt': 'adam'}, {'x': -0.7, 'opt': 'sgd'}]


def _regressor(relevance=None) -> OmniPredRegressor:
  """A tiny model whose prior-study codes are not zero (as after training)."""
  reg = OmniPredRegressor.from_scratch(PRIOR_TINY, relevance=relevance)
  with torch.no_grad():
    torch.manual_seed(1)
    for p in (reg.base.study_code[2].weight, reg.base.study_code[2].bias, reg.base.prior_role):
      p.normal_(0, 0.5)
  return reg


def _studies(seed=0):
  rng = np.random.default_rng(seed)
  current = [({'x': float(a), 'opt': str(o)}, float(a ** 2 + (o == 'sgd')))
             for a, o in zip(rng.uniform(-1, 1, 6), rng.choice(['adam', 'sgd'], 6))]
  missing_and_extra = [({'x': float(a), 'width': int(w)}, float((a - 0.2) ** 2 + w / 100))
                       for a, w in zip(rng.uniform(-1, 1, 10), rng.integers(8, 64, 10))]
  other_category = [({'x': float(a), 'opt': 'lamb'}, float(-3 * a)) for a in rng.uniform(-1, 1, 8)]
  return current, missing_and_extra, other_category


def test_predictions_do_not_depend_on_the_order_of_prior_studies_or_their_trials():
  reg = _regressor()
  current, a, b = _studies()
  reg.condition(current, prior_studies=[a, b])
  first = reg.quantiles(QUERIES, [0.1, 0.5, 0.9])
  reg.condition(current, prior_studies=[b[::-1], a[3:] + a[:3]])
  np.testing.assert_allclose(reg.quantiles(QUERIES, [0.1, 0.5, 0.9]), first, rtol=1e-5, atol=1e-6)
  assert reg.prior_trials == [8, 10]
  reg.condition(current)
  assert not np.allclose(reg.quantiles(QUERIES, [0.1, 0.5, 0.9]), first)  # the priors count


def test_a_mixture_reads_the_prior_studies_both_ways_and_pools_only_those_with_every_parameter():
  """`prior_studies='mixture'`: half the samples from the prior studies read as prior
  studies, half from those holding every parameter of the study's trials pooled into them."""
  reg = _regressor(RelevanceConfig(prior_studies='mixture'))
  current, a, b = _studies()  # a lacks 'opt': never pooled
  reg.condition(current, prior_studies=[a, b])
  assert reg.prior_trials == [10, 8] and reg.pooled_trials == [0, 8]
  as_priors = reg.for_new_study(relevance=RelevanceConfig())
  as_priors.condition(current, prior_studies=[a, b])
  y = pooled_values([np.asarray([v for _, v in b])], np.asarray([v for _, v in current]))
  pooled = reg.for_new_study(relevance=RelevanceConfig())
  pooled.condition([(r, v) for (r, _), v in zip(b, y)] + current, prior_studies=[a])
  samples = reg.sample(QUERIES, 6, seed=3)
  np.testing.assert_allclose(samples[:, :3], as_priors.sample(QUERIES, 3, seed=3))
  np.testing.assert_allclose(samples[:, 3:], pooled.sample(QUERIES, 3, seed=4))
  # The mixture's median lies between the two readings' medians (up to its level grid).
  near = [(MIXTURE_GRID // 2 - 0.5) / MIXTURE_GRID, (MIXTURE_GRID // 2 + 0.5) / MIXTURE_GRID]
  both = np.stack([as_priors.quantiles(QUERIES, near), pooled.quantiles(QUERIES, near)])
  median = reg.quantiles(QUERIES, [0.5])[:, 0]
  assert np.all(median >= both[:, :, 0].min(axis=0)) and np.all(median <= both[:, :, 1].max(axis=0))
  # No prior study holds every parameter: one reading, as with 'all'.
  reg.condition(current, prior_studies=[a])
  as_priors.condition(current, prior_studies=[a])
  assert reg.pooled_trials == []
  np.testing.assert_allclose(reg.sample(QUERIES, 4, seed=3), as_priors.sample(QUERIES, 4, seed=3))


@pytest.mark.parametrize('field, before, after', [('pooled_until', 'mixture', 'all'),
                                                   ('pooled_from', 'all', 'mixture')])
def test_pooled_until_and_pooled_from_choose_the_reading_by_the_studys_size(field, before, after):
  """With 'mixture', `pooled_until` reads a context of fewer study trials as the mixture and
  from that many on the prior studies as prior studies only ('all'); `pooled_from` the other
  way round."""
  current, a, b = _studies()  # 6 trials; b holds every parameter
  reg = _regressor(RelevanceConfig(prior_studies='mixture', **{field: 6}))
  for rows, reading in ((current[:5], before), (current, after)):
    alone = reg.for_new_study(relevance=RelevanceConfig(prior_studies=reading))
    reg.condition(rows, prior_studies=[a, b])
    alone.condition(rows, prior_studies=[a, b])
    assert reg.pooled_trials == ([0, 8] if reading == 'mixture' else [])
    assert reg.prior_trials == [10, 8]
    np.testing.assert_allclose(reg.sample(QUERIES, 4, seed=3), alone.sample(QUERIES, 4, seed=3))
  with pytest.raises(ValueError, match=field):
    RelevanceConfig(prior_studies='mixture', **{field: 1})


def test_a_prior_study_with_a_missing_an_extra_parameter_and_another_category_is_read():
  reg = _regressor()
  current, a, b = _studies()
  reg.condition(current, prior_studies=[a, b])
  assert set(reg.featurizer.parameter_names) == {'x', 'opt', 'width'}
  assert np.isfinite(reg.quantiles(QUERIES, [0.5])).all()


def test_a_condition_without_prior_studies_reads_the_study_alone_again():
  reg = _regressor()
  current, a, _ = _studies()
  reg.condition(current, prior_studies=[a])
  assert 'width' in reg.featurizer.parameter_names
  reg.condition(current)
  assert set(reg.featurizer.parameter_names) == {'x', 'opt'} and reg.prior_trials == []


@pytest.mark.parametrize('bad, message', [
    ([({'x': 0.1}, float('nan')), ({'x': 0.2}, 1.0)], r'Prior study 1, example 0: y is nan'),
    ([({'x': 0.1}, 1.0)], r'Prior study 1 needs at least 2 examples'),
])
def test_bad_prior_studies_are_named(bad, message):
  reg = _regressor()
  current, a, _ = _studies()
  with pytest.raises(ValueError, match=message):
    reg.condition(current, prior_studies=[a, bad])


def test_a_model_not_trained_on_prior_studies_refuses_them():
  reg = OmniPredRegressor.from_scratch(TINY, relevance=None)
  current, a, _ = _studies()
  with pytest.raises(ValueError, match='was not trained to read prior studies'):
    reg.condition(current, prior_studies=[a])


def test_the_prior_studies_read_are_chosen_by_held_out_likelihood_and_reported():
  config = RelevanceConfig(prior_studies='chosen', min_kept=2)  # keeps both parameters
  reg = _regressor(config)
  current, a, b = _studies()
  priors = [a, b, a[:5]]
  reg.condition(current, prior_studies=priors)
  choice = reg.prior_choice
  assert choice.num_trials == 6 and len(choice.kept) < 3  # some study was left out
  assert all(later < earlier for earlier, later in zip(choice.scores, choice.scores[1:]))
  assert reg.prior_trials == [n if k in choice.kept else 0
                              for k, n in enumerate([10, 8, 5])]
  # The predictions are those of a condition on the kept studies alone.
  alone = _regressor(RelevanceConfig(min_kept=2))
  alone.condition(current, prior_studies=[priors[k] for k in choice.kept])
  np.testing.assert_allclose(reg.quantiles(QUERIES, [0.1, 0.5, 0.9]),
                             alone.quantiles(QUERIES, [0.1, 0.5, 0.9]), rtol=1e-5, atol=1e-6)
  # With too few trials to tell, every prior study is read.
  reg.condition(current[:5], prior_studies=priors)
  assert reg.prior_trials == [10, 8, 5]


def test_the_held_out_likelihood_with_no_prior_study_read_is_the_study_s_own():
  reg = _regressor()
  current, a, b = _studies()
  reg.condition(current, prior_studies=[a, b])
  meta, context = reg.featurizer.metadata(), reg.featurizer.featurize([r for r, _ in current])
  y = np.asarray([v for _, v in current])
  prior = reg.featurizer.featurize([r for r, _ in a + b])
  config = RelevanceConfig(folds=3)
  with_priors = HeldOutLikelihood(reg.base, context, meta, y, views=1, config=config,
                                  prior=prior, prior_y=[[v for _, v in a], [v for _, v in b]])
  alone = HeldOutLikelihood(reg.base, context, meta, y, views=1, config=config)
  columns = range(context.names.shape[1])
  assert with_priors(columns, ()) == pytest.approx(alone(columns))
  assert with_priors(columns, (0,)) != pytest.approx(alone(columns))
  assert with_priors(columns, (0, 1)) != pytest.approx(with_priors(columns, (0,)))


def test_switching_prior_studies_on_changes_no_prediction():
  source = OmniPredRegressor.from_scratch(attrs.evolve(TINY, slot_binding=True), relevance=None)
  grown = OmniPredModel(PRIOR_TINY)
  growth.load_grown(grown, source.base)
  target = OmniPredRegressor(grown, relevance=None)
  current, _, _ = _studies()
  for reg in (source, target):
    reg.condition(current)
  np.testing.assert_allclose(target.quantiles(QUERIES, [0.2, 0.8]),
                             source.quantiles(QUERIES, [0.2, 0.8]), rtol=1e-6)


def _family(**config):
  fields = dict(shift_fraction=0.0, warp_fraction=0.0, noise_fraction=0.0, drop_fraction=0.0,
                add_fraction=0.0, range_fraction=0.0, foreign_fraction=0.0)
  fields.update(config)
  return FamilyConfig(**fields)


@pytest.mark.parametrize('seed', range(4))
def test_a_related_prior_study_is_the_same_function_and_an_unrelated_one_is_not(seed):
  corpus = CorpusConfig(noise_fraction=0.0)  # BBOB objectives: deterministic
  related = StudyFamily(seed, corpus, _family(), relation='related', num_priors=1)
  rows, y = related.draw(5, np.random.default_rng(seed), prior_sizes=[40])[1]
  truth = related.current.evaluate(rows)
  assert stats.spearmanr(y, truth).statistic > 0.99
  unrelated = StudyFamily(seed, corpus, _family(), relation='unrelated', num_priors=1)
  rows, y = unrelated.draw(5, np.random.default_rng(seed), prior_sizes=[40])[1]
  assert abs(stats.spearmanr(y, related.current.evaluate(rows)).statistic) < 0.9


def test_a_moved_optimum_and_a_dropped_parameter_change_the_prior_study():
  family = StudyFamily(3, CorpusConfig(min_dim=3), _family(shift_fraction=1.0, drop_fraction=1.0),
                       relation='related', num_priors=1)
  rows, _ = family.draw(5, np.random.default_rng(0), prior_sizes=[20])[1]
  assert len(rows[0]) == family.current.dim - 1
  assert family.relations[0].shift is not None


def test_family_batches_put_prior_trials_in_the_context_and_train():
  cfg = trainer.TrainConfig(model=PRIOR_TINY, family_fraction=1.0, trials_per_batch=300,
                            max_context=20, eval_studies=2, eval_family_sizes=(5,),
                            eval_prior_trials=10)
  inputs, ids = trainer.make_batch(cfg, step=0, rank=0)
  prior = (inputs.study > 0) & inputs.present
  assert prior.any() and inputs.is_context[prior].all()
  model = OmniPredModel(PRIOR_TINY)
  loss = model.loss(model.to_tensors(inputs), torch.as_tensor(ids))
  loss.backward()
  assert torch.isfinite(loss) and model.study_code[2].weight.grad.abs().sum() > 0
  report = trainer.evaluate(model, cfg, torch.device('cpu'))
  assert set(report['family_by_context']) == {'related', 'unrelated', 'none'}


def test_pretrain_s_unrelated_fraction_reaches_the_family_prior_and_the_card(tmp_path):
  from vizier_omnipred import cli  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.pretraining import model_card  # pylint: disable=g-import-not-at-top
  every = StudyFamily(0, CorpusConfig(), FamilyConfig(unrelated_fraction=1.0), num_priors=3)
  assert [r.related for r in every.relations] == [False] * 3
  with pytest.raises(ValueError, match='unrelated_fraction'):
    FamilyConfig(unrelated_fraction=1.5)
  out = tmp_path / 'run'
  cli.main(['pretrain', '--out', str(out), '--steps', '1', '--eval-every', '1', '--quiet',
            '--d-model', '32', '--heads', '2', '--encoder-layers', '1', '--decoder-layers', '1',
            '--family-fraction', '1.0', '--unrelated-fraction', '0.75',
            '--trials-per-batch', '64', '--max-context', '10'])
  summary = model_card.previous_summary(out)
  assert summary['train_config']['family']['unrelated_fraction'] == 0.75
  card = model_card.card_text(summary, None)
  assert '--family-fraction 1.0 --unrelated-fraction 0.75' in card
  assert 'each unrelated with probability 75%' in card
  default = dict(summary, train_config=dict(summary['train_config'], family={}))
  card = model_card.card_text(default, None)  # a summary from before the field: the default
  assert '--unrelated-fraction' not in card and 'each unrelated with probability 25%' in card


def test_family_fraction_needs_a_model_that_reads_prior_studies():
  with pytest.raises(ValueError, match='prior_studies'):
    trainer.TrainConfig(model=TINY, family_fraction=0.5)


def _designer(reads_priors: bool = True, relevance=None, **config):
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', -1.0, 1.0)
  problem.search_space.root.add_categorical_param('opt', ['adam', 'sgd'])
  problem.metric_information.append(
      vz.MetricInformation('loss', goal=vz.ObjectiveMetricGoal.MINIMIZE))
  reg = _regressor() if reads_priors else OmniPredRegressor.from_scratch(TINY, relevance=None)
  factory = LMSurrogate.factory(LMSurrogateConfig(relevance=relevance), shared=reg)
  config = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=32, num_samples=4, **config)
  return problem, OmniPredDesigner(problem, seed=0, config=config, surrogate_factory=factory)


def _trials(problem_params, n, metric, value, seed):
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    params = {name: draw(rng) for name, draw in problem_params.items()}
    trial = vz.Trial(id=i + 1, parameters=params)
    out.append(trial.complete(vz.Measurement({metric: value(params)})))
  return out


@pytest.mark.parametrize('relevance, pooled', [
    (None, None),
    # The default's reading (min_trials above the study's: no parameter choice here): the
    # study of the same parameters is also pooled, the other is not.
    (RelevanceConfig(refresh_growth=0.2, prior_studies='mixture', min_trials=50), '12,0'),
    # Averaged with the study alone: no pooling, and the prior studies' weight is said.
    (RelevanceConfig(refresh_growth=0.2, prior_studies='averaged', min_trials=50), None)])
def test_the_designer_reads_prior_studies_and_says_which(relevance, pooled):
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  problem, designer = _designer(relevance=relevance)
  same = _trials({'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: str(r.choice(['adam', 'sgd']))},
                 12, 'loss', lambda p: p['x'] ** 2, 1)
  other_problem = vz.ProblemStatement()
  other_problem.search_space.root.add_float_param('x', -2.0, 2.0)
  other_problem.search_space.root.add_int_param('width', 8, 64)
  other_problem.metric_information.append(
      vz.MetricInformation('accuracy', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  other = _trials({'x': lambda r: float(r.uniform(-2, 2)), 'width': lambda r: int(r.integers(8, 65))},
                  9, 'accuracy', lambda p: 1 - p['x'] ** 2, 2)
  other.append(vz.Trial(id=99, parameters={'x': 0.0, 'width': 8}).complete(
      vz.Measurement(), infeasibility_reason='crashed'))
  designer.set_priors([vza.CompletedTrials(same), (other_problem, other)],
                      names=['last_week', 'other_dataset'])
  for trial in _trials({'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: 'adam'},
                       4, 'loss', lambda p: p['x'] ** 2, 3):
    designer.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
  suggestion = designer.suggest(1)[0]
  md = suggestion.metadata.ns('omnipred')
  assert md['phase'] == 'model'
  assert md['prior_studies'] == 'last_week,other_dataset' and md['prior_trials'] == '12,9'
  assert md.get('prior_pooled') == pooled
  averaged = relevance is not None and relevance.prior_studies == 'averaged'
  assert ('prior_weight' in md) == averaged
  if averaged:
    assert 0.0 <= float(md['prior_weight']) <= 1.0


def test_with_prior_studies_set_the_designer_scores_with_their_acquisition():
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  draws = {'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: str(r.choice(['adam', 'sgd']))}
  _, designer = _designer(acquisition='ei', acquisition_with_priors='pi')
  for trial in _trials(draws, 4, 'loss', lambda p: p['x'] ** 2, 3):
    designer.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
  chosen = lambda: designer.suggest(1)[0].metadata.ns('omnipred')['acquisition']
  assert chosen() == 'ei'
  designer.set_priors([vza.CompletedTrials(_trials(draws, 8, 'loss', lambda p: p['x'] ** 2, 1))])
  assert chosen() == 'pi'
  designer.set_priors([])  # none set: the study's own again
  assert chosen() == 'ei'
  for with_priors, expected in (({}, 'ucb(0.6)'), (dict(acquisition_with_priors=None), 'ei')):
    _, plain = _designer(acquisition='ei', **with_priors)  # the default; None: the study's own
    for trial in _trials(draws, 4, 'loss', lambda p: p['x'] ** 2, 3):
      plain.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
    plain.set_priors([vza.CompletedTrials(_trials(draws, 8, 'loss', lambda p: p['x'] ** 2, 1))])
    assert plain.suggest(1)[0].metadata.ns('omnipred')['acquisition'] == expected


def test_with_prior_studies_set_the_designer_searches_with_their_optimizer():
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  from designers.acquisition_search import AcquisitionSearchConfig, EvolutionarySearch  # pylint: disable=g-import-not-at-top
  draws = {'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: str(r.choice(['adam', 'sgd']))}
  search = EvolutionarySearch(AcquisitionSearchConfig(generations=1, children=8, finalists=4))
  _, designer = _designer(optimizer_with_priors=search)
  for trial in _trials(draws, 4, 'loss', lambda p: p['x'] ** 2, 3):
    designer.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
  searched = lambda: designer.suggest(1)[0].metadata.ns('omnipred').get('searched_candidates')
  # No priors: the default optimiser samples the whole pool of 32 and searches nothing.
  assert searched() is None and designer.last_report['candidates'] == 32
  designer.set_priors([vza.CompletedTrials(_trials(draws, 8, 'loss', lambda p: p['x'] ** 2, 1))])
  # Priors: the search scores the pool and its children, and only its 4 finalists are sampled.
  assert int(searched()) > 32 and designer.last_report['candidates'] == 4


def test_prior_studies_are_read_until_the_study_has_prior_studies_until_trials():
  """From `prior_studies_until` trials on the designer suggests as without priors: the
  model reads none and the study's own acquisition scores."""
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  draws = {'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: str(r.choice(['adam', 'sgd']))}
  _, designer = _designer(acquisition='ei', acquisition_with_priors='pi', prior_studies_until=5)
  designer.set_priors([vza.CompletedTrials(_trials(draws, 8, 'loss', lambda p: p['x'] ** 2, 1))])
  trials = _trials(draws, 5, 'loss', lambda p: p['x'] ** 2, 3)
  designer.update(vza.CompletedTrials(trials[:4]), vza.ActiveTrials())
  md = designer.suggest(1)[0].metadata.ns('omnipred')
  assert (md['phase'], md['acquisition'], md['prior_studies']) == ('model', 'pi', 'prior0')
  designer.update(vza.CompletedTrials(trials[4:]), vza.ActiveTrials())
  md = designer.suggest(1)[0].metadata.ns('omnipred')
  assert (md['phase'], md['acquisition'], md.get('prior_studies')) == ('model', 'ei', None)


def test_a_one_objective_acquisition_for_priors_leaves_several_objectives_their_own():
  """The default acquisition with priors (UCB, one objective) does not break a study of two
  objectives that sets priors: it keeps its own (EHVI); one that scores any number is used."""
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  from designers.acquisition import ExpectedHypervolumeImprovement  # pylint: disable=g-import-not-at-top
  from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', -1.0, 1.0)
  for name in ('loss', 'latency'):
    problem.metric_information.append(
        vz.MetricInformation(name, goal=vz.ObjectiveMetricGoal.MINIMIZE))
  factory = LMSurrogate.factory(LMSurrogateConfig(), shared=_regressor())
  prior = [vz.Trial(parameters={'x': x}).complete(vz.Measurement({'loss': x * x,
                                                                   'latency': 1 - x}))
           for x in np.linspace(-1, 1, 6)]
  for with_priors, expected in (({}, 'ehvi'),
                                (dict(acquisition_with_priors=ExpectedHypervolumeImprovement(
                                    reference_margin=0.5)), 'ehvi')):
    designer = OmniPredDesigner(problem, seed=0, surrogate_factory=factory,
                                config=OmniPredDesignerConfig(**with_priors))
    designer.set_priors([vza.CompletedTrials(prior)])
    chosen = designer._chosen_acquisition(with_priors=True)  # pylint: disable=protected-access
    assert chosen.name == expected
    if with_priors:
      assert chosen == with_priors['acquisition_with_priors']


def test_prior_studies_best_trials_join_the_pool_and_may_start_the_model_sooner():
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  from designers.omnipred_designer import OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers import candidate_pool  # pylint: disable=g-import-not-at-top
  from designers.candidates import CandidateSpace  # pylint: disable=g-import-not-at-top
  from designers.prior_studies import best_trials, named  # pylint: disable=g-import-not-at-top
  from vizier_omnipred import StudyInfo  # pylint: disable=g-import-not-at-top
  problem, designer = _designer()
  draws = {'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: str(r.choice(['adam', 'sgd']))}
  prior = _trials(draws, 10, 'loss', lambda p: (p['x'] - 0.5) ** 2, 1)
  current = _trials(draws, 2, 'loss', lambda p: (p['x'] - 0.5) ** 2, 3)
  for trial in current:
    designer.update(vza.CompletedTrials([trial]), vza.ActiveTrials())
  assert designer.suggest(1)[0].metadata.ns('omnipred')['phase'] == 'seed'  # 3 seeds
  designer.set_priors([vza.CompletedTrials(prior)])
  assert designer.suggest(1)[0].metadata.ns('omnipred')['phase'] == 'seed'
  early = OmniPredDesignerConfig(num_seed_trials=3, num_seed_trials_with_priors=2)
  assert early.seed_trials(True) == 2 and early.seed_trials(False) == 3
  # The best trials of each prior study (its metric minimised), best first; none from a study
  # that shares no parameter.
  info = StudyInfo.from_problem(problem, 'loss')
  best = best_trials(named([vza.CompletedTrials(prior)]), info, 2, ['x', 'opt'])
  losses = sorted(t.final_measurement.metrics['loss'].value for t in prior)
  assert [t.final_measurement.metrics['loss'].value for t in best] == losses[:2]
  assert best_trials(named([vza.CompletedTrials(prior)]), info, 2, ['width']) == []
  space = CandidateSpace(problem.search_space)
  also = space.to_unit(best)
  pool = candidate_pool.pool(space, current, 16, local_fraction=0.5, radius=0.1,
                             rng=np.random.default_rng(0), also=also)
  assert pool.shape == (16, 2) and np.array_equal(pool[:2], also)


def test_seeding_with_prior_best_tries_each_prior_study_s_best_first_and_once():
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  from designers.omnipred_designer import OmniPredDesigner  # pylint: disable=g-import-not-at-top
  problem, designer = _designer()
  centre_first = OmniPredDesigner(problem, seed=0, config=attrs.evolve(
      designer._config, seed_with_prior_best=False), surrogate=designer.surrogate)
  draws = {'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: str(r.choice(['adam', 'sgd']))}
  priors = [vza.CompletedTrials(_trials(draws, 10, 'loss', lambda p: (p['x'] - 0.5) ** 2, s))
            for s in (1, 2)]
  for d in (designer, centre_first):
    d.set_priors(priors)
  bests = [min(p.trials, key=lambda t: t.final_measurement.metrics['loss'].value)
           .parameters.as_dict() for p in priors]
  first = [s.parameters.as_dict() for s in designer.suggest(2)]
  assert [f['opt'] for f in first] == [b['opt'] for b in bests]
  assert np.allclose([f['x'] for f in first], [b['x'] for b in bests])
  for i, s in enumerate(first):  # tried: the next seed is a quasi-random point, not a repeat
    designer.update(vza.CompletedTrials([vz.Trial(id=i + 1, parameters=s).complete(
        vz.Measurement({'loss': 1.0}))]), vza.ActiveTrials())
  following = designer.suggest(1)[0].parameters.as_dict()
  assert following not in first and not np.isclose(following['x'], 0.0)
  assert centre_first.suggest(1)[0].parameters.as_dict()['x'] == 0.0


def test_another_study_s_trials_are_placed_where_they_can_be_and_centred_where_not():
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  from designers.candidates import CandidateSpace  # pylint: disable=g-import-not-at-top
  space_def = vz.SearchSpace()
  space_def.root.add_float_param('lr', 1e-4, 1.0, scale_type=vz.ScaleType.LOG)
  space_def.root.add_categorical_param('opt', ['adam', 'sgd'])
  space = CandidateSpace(space_def)
  foreign = [vz.Trial(parameters={'lr': 1.0, 'opt': 'rmsprop', 'width': 8}),
             vz.Trial(parameters={'lr': 0.0, 'opt': 'sgd'}),
             vz.Trial(parameters={'lr': 10.0})]
  unit = space.to_unit(foreign, foreign=True)
  assert np.allclose(unit, [[1.0, 0.75], [0.5, 0.75], [1.0, 0.75]])  # 0.5 -> cell 'sgd'
  with pytest.raises(ValueError, match='rmsprop'):
    space.to_unit(foreign[:1])  # the study's own trials: a bad value is an error


def test_a_designer_whose_model_cannot_read_prior_studies_refuses_them():
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  _, designer = _designer(reads_priors=False)
  with pytest.raises(ValueError, match='cannot read prior studies'):
    designer.set_priors([vza.CompletedTrials([])])


@pytest.fixture(scope='module')
def prior_checkpoint(tmp_path_factory) -> str:
  from vizier_omnipred import checkpoints  # pylint: disable=g-import-not-at-top
  path = tmp_path_factory.mktemp('prior') / 'tiny_prior.pt'
  checkpoints.save(path, _regressor().base, card={'name': 'tiny-prior'})
  return str(path)


def _server_factory(checkpoint: str, auto: bool):
  from designers.omnipred_designer import OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  from designers.plugin import OmniPredPolicyFactory  # pylint: disable=g-import-not-at-top
  from designers.prior_finder import TransferConfig  # pylint: disable=g-import-not-at-top
  from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  return OmniPredPolicyFactory(
      config=OmniPredDesignerConfig(num_seed_trials=3, num_candidates=32, num_samples=4),
      surrogate_factory=LMSurrogate.factory(LMSurrogateConfig(checkpoint=checkpoint,
                                                              relevance=None)),
      transfer=TransferConfig(auto=auto))


def _last_metadata(study):
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  done = list(study.trials(vz.TrialFilter(status=[vz.TrialStatus.COMPLETED])).get())
  return done[-1].metadata.ns('omnipred')


def test_a_server_study_reads_finished_studies_listed_and_found_and_after_a_restart(
    tmp_path, prior_checkpoint):
  from vizier.service import clients  # pylint: disable=g-import-not-at-top
  from designers import prior_finder  # pylint: disable=g-import-not-at-top
  from designers.serving import Service  # pylint: disable=g-import-not-at-top
  from tests.conftest import bounded  # pylint: disable=g-import-not-at-top
  from tests.test_faults import _config, _cycle  # pylint: disable=g-import-not-at-top
  db = tmp_path / 'v.db'
  with Service(database=db, policy_factory=_server_factory(prior_checkpoint, auto=True)) as s:
    clients.environment_variables.server_endpoint = s.endpoint
    for study_id in ('a', 'b'):
      study = clients.Study.from_study_config(_config(), owner='me', study_id=study_id)
      for _ in range(6):
        bounded(_cycle, study, 'w', timeout=60)
    unrelated = clients.Study.from_study_config(_config(objectives=('other',)), owner='me',
                                                study_id='u')
    bounded(lambda: unrelated.suggest(count=1, client_id='w'), timeout=60)  # open, other metric
    config = _config()
    prior_finder.as_config_metadata(config, ['owners/me/studies/b'])
    third = clients.Study.from_study_config(config, owner='me', study_id='c')
    for _ in range(4):  # 3 seeds, then the model
      bounded(_cycle, third, 'w', timeout=60)
    md = _last_metadata(third)
    assert md['phase'] == 'model'
    assert md['prior_studies'] == 'owners/me/studies/b,owners/me/studies/a'  # listed, then found
    assert md['prior_trials'] == '6,6'
  with Service(database=db, policy_factory=_server_factory(prior_checkpoint, auto=False)) as s:
    clients.environment_variables.server_endpoint = s.endpoint
    third = clients.Study.from_owner_and_id('me', 'c')
    bounded(_cycle, third, 'w', timeout=60)
    md = _last_metadata(third)
    assert md['prior_studies'] == 'owners/me/studies/b'  # listed only, after a restart


def test_pretraining_mixes_in_a_vizier_databases_finished_studies(tmp_path, capsys):
  """Six finished studies written through a real server (random search), then two steps of
  pretraining that read them: training episodes from some, the report on the held-out rest."""
  import json  # pylint: disable=g-import-not-at-top
  from vizier.service import clients  # pylint: disable=g-import-not-at-top
  from designers.serving import Service  # pylint: disable=g-import-not-at-top
  from tests.test_faults import _config, _cycle  # pylint: disable=g-import-not-at-top
  from vizier_omnipred import checkpoints, cli  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.pretraining import user_studies  # pylint: disable=g-import-not-at-top
  db = tmp_path / 'v.db'
  with Service(database=db) as s:
    clients.environment_variables.server_endpoint = s.endpoint
    for i in range(6):
      study = clients.Study.from_study_config(_config(algorithm='RANDOM_SEARCH'), owner='me',
                                              study_id=f's{i}')
      for _ in range(8):
        _cycle(study, 'w')
    open_study = clients.Study.from_study_config(_config(algorithm='RANDOM_SEARCH'),
                                                 owner='me', study_id='open')
    for _ in range(8):
      _cycle(open_study, 'w')
    open_study.suggest(count=1, client_id='w')  # an ACTIVE trial: not finished, not read
  url = f'sqlite:///{db}'
  studies = user_studies.read(url)
  assert sorted(s.name for s in studies) == [f'owners/me/studies/s{i}' for i in range(6)]
  assert all(len(s.rows) == 8 for s in studies)
  own, held = user_studies.split(url, 0.2)
  assert [s.name for s in held] == ['owners/me/studies/s5']  # by the hash of its name
  init = tmp_path / 'tiny.pt'
  checkpoints.save(init, OmniPredModel(TINY), card={'name': 'tiny'})
  out = tmp_path / 'run'
  cli.main(['pretrain', '--out', str(out), '--steps', '2', '--eval-every', '2', '--quiet',
            '--d-model', '32', '--heads', '2', '--encoder-layers', '1', '--decoder-layers', '1',
            '--init-from', str(init), '--from-database', url, '--database-fraction', '0.5',
            '--trials-per-batch', '64', '--max-context', '10'])
  assert 'finished studies to train on' in capsys.readouterr().out
  history = json.loads((out / 'summary.json').read_text())['history']
  report = history[-1]['database_by_context']
  assert sorted(map(int, report)) == [5, 10, 30] and all(np.isfinite(list(report.values())))
  with pytest.raises(ValueError, match='database_fraction'):
    trainer.TrainConfig(database_url=url, database_fraction=1.0)


def test_the_shipped_transfer_checkpoint_reads_prior_studies():
  from vizier_omnipred import checkpoints  # pylint: disable=g-import-not-at-top
  reg = OmniPredRegressor.from_pretrained(checkpoints.SHIPPED_TRANSFER, relevance=None, views=1)
  assert reg.base.model_config.prior_studies
  current, a, b = _studies()
  reg.condition(current, prior_studies=[a, b])
  assert np.isfinite(reg.quantiles(QUERIES, [0.5])).all() and reg.prior_trials == [10, 8]


def test_the_shipped_transfer_model_pools_the_same_function_and_leaves_out_another():
  """`prior_studies='pooled'`: a prior study of the same function (other units) is read as the
  study's own trials, y by rank onto the study's range; an unrelated one is left out."""
  from vizier_omnipred import checkpoints  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(2)

  def study(n, g):
    return [({'a': float(x[0]), 'b': float(x[1])}, float(g(x))) for x in rng.uniform(-1, 1, (n, 2))]

  def f(x):
    return np.sin(3 * x[0]) + x[1] ** 2

  current, same = study(6, f), study(30, lambda x: 5 * f(x) + 2)
  other = study(30, lambda x: np.cos(7 * x[0] * x[1]))
  config = RelevanceConfig(prior_studies='pooled', prior_min_trials=5, min_kept=2)
  reg = OmniPredRegressor.from_pretrained(checkpoints.SHIPPED_TRANSFER, views=1, relevance=config)
  reg.condition(current, prior_studies=[same, other])
  assert reg.prior_choice.modes == ('pooled', 'left_out')
  assert reg.num_context == 36 and reg.pooled_trials == [30, 0] and reg.prior_trials == [0, 0]
  # The same predictions as the pooled trials given as the study's own.
  y = pooled_values([np.asarray([v for _, v in same])], np.asarray([v for _, v in current]))
  plain = reg.for_new_study(relevance=RelevanceConfig(min_kept=2))
  plain.condition([(r, v) for (r, _), v in zip(same, y)] + current)
  queries = [{'a': 0.3, 'b': -0.2}, {'a': -0.9, 'b': 0.5}]
  np.testing.assert_allclose(reg.quantiles(queries, [0.2, 0.5, 0.8]),
                             plain.quantiles(queries, [0.2, 0.5, 0.8]), rtol=1e-5, atol=1e-6)



@pytest.mark.parametrize('weight, first', [(0.3, 2), (0.0, 0), (1.0, 6)])
def test_an_averaged_reading_mixes_priors_read_and_the_study_alone_by_weight(
    monkeypatch, weight, first):
  """`prior_studies='averaged'`: the first reading's weight's share of the samples from the
  prior studies read as prior studies, the rest from the study read alone; the quantiles mix
  both readings' levels in the same shares."""
  from vizier_omnipred import regressor  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(regressor, 'averaged_weight', lambda score, keep: weight)
  reg = _regressor(RelevanceConfig(prior_studies='averaged'))
  current, a, b = _studies()
  reg.condition(current, prior_studies=[a, b])
  assert reg.averaged_weight == weight and reg.prior_trials == [10, 8] and reg.pooled_trials == []
  as_priors = reg.for_new_study(relevance=RelevanceConfig())
  as_priors.condition(current, prior_studies=[a, b])
  alone = reg.for_new_study(relevance=RelevanceConfig())
  alone.condition(current)
  samples = reg.sample(QUERIES, 6, seed=3)
  if first:
    np.testing.assert_allclose(samples[:, :first], as_priors.sample(QUERIES, first, seed=3))
  if first < 6:  # the second reading's stream: seed + 1
    np.testing.assert_allclose(samples[:, first:], alone.sample(QUERIES, 6 - first, seed=4))
  median = reg.quantiles(QUERIES, [0.5])[:, 0]
  ends = {0.0: alone, 1.0: as_priors}
  if weight in ends:  # one reading: its own exact quantiles
    np.testing.assert_allclose(median, ends[weight].quantiles(QUERIES, [0.5])[:, 0])
  else:  # between the two readings' medians
    both = np.stack([as_priors.quantiles(QUERIES, [0.5])[:, 0], alone.quantiles(QUERIES, [0.5])[:, 0]])
    assert np.all(median >= both.min(axis=0) - 1e-9) and np.all(median <= both.max(axis=0) + 1e-9)
  # Without prior studies: the study alone, no weight.
  reg.condition(current)
  assert reg.averaged_weight is None
  np.testing.assert_allclose(reg.sample(QUERIES, 4, seed=3), alone.sample(QUERIES, 4, seed=3))


def test_the_averaged_weight_is_the_posterior_of_reading_the_prior_studies():
  """Even prior odds; the log-likelihood ratio summed over the study's trials."""
  from vizier_omnipred.relevance import averaged_weight  # pylint: disable=g-import-not-at-top

  class Score:  # held-out NLL per trial: 1.0 with the prior studies read, 1.2 without
    y, num_priors = np.zeros(10), 2

    def __call__(self, keep, priors=()):
      return 1.0 if list(priors) == [0, 1] else 1.2

  assert averaged_weight(Score(), [0]) == pytest.approx(1 / (1 + np.exp(-10 * 0.2)))
  Score.num_priors = 0
  assert averaged_weight(Score(), [0]) == 0.0


def test_the_shipped_transfer_model_weighs_related_prior_studies_above_unrelated_ones():
  """`prior_studies='averaged'` on the shipped weights, over five studies of 12 trials: a
  prior study of the same function (other units) takes more of the predictions than one of
  another function (one study's weights are noisy: where both readings predict alike, either
  may win)."""
  from vizier_omnipred import checkpoints  # pylint: disable=g-import-not-at-top
  reg = OmniPredRegressor.from_pretrained(
      checkpoints.SHIPPED_TRANSFER, views=1,
      relevance=RelevanceConfig(prior_studies='averaged', min_kept=2))

  def f(x):
    return np.sin(3 * x[0]) + x[1] ** 2

  weights = []
  for seed in range(5):
    rng = np.random.default_rng(seed)

    def study(n, g):
      return [({'a': float(x[0]), 'b': float(x[1])}, float(g(x)))
              for x in rng.uniform(-1, 1, (n, 2))]

    current, same = study(12, f), study(40, lambda x: 5 * f(x) + 2)
    other = study(40, lambda x: np.cos(7 * x[0] * x[1]))
    reg.condition(current, prior_studies=[same])
    related = reg.averaged_weight
    reg.condition(current, prior_studies=[other])
    weights.append((related, reg.averaged_weight))
  related, unrelated = np.mean(weights, axis=0)
  assert related > unrelated + 0.2, weights


@pytest.mark.parametrize('current_slots', [False, True])
def test_with_current_slots_prior_studies_over_other_parameters_leave_the_study_s_slots(
    current_slots):
  config = attrs.evolve(PRIOR_TINY, current_slots=current_slots)
  model = OmniPredModel(config)
  family = StudyFamily(1, CorpusConfig(min_dim=3), _family(foreign_fraction=1.0),
                       relation='unrelated', num_priors=2)
  problem, rows, y, priors = trainer.family_draw(family, 8, np.random.default_rng(0))
  assert all(not set(p[0][0]) & set(rows[0]) for p in priors)  # no name shared
  slots = []
  for read in (priors, []):
    inputs, _ = trainer.family_inputs(problem, rows, y, read, 6, config)
    tensors = model.to_tensors(inputs)
    current = tensors['study'] == 0 if read else torch.ones_like(tensors['present'])
    own = model.slots(tensors)[current & tensors['present']]
    slots.append(own[tensors['mask'][current & tensors['present']]])
  assert torch.equal(slots[0], slots[1]) == current_slots


def test_current_slots_need_a_model_that_reads_prior_studies():
  with pytest.raises(ValueError, match='current_slots needs prior_studies'):
    attrs.evolve(TINY, current_slots=True)


def test_a_seed_region_spans_the_prior_best_and_keeps_the_axes_they_do_not_set_whole():
  from vizier import pyvizier as vz  # pylint: disable=g-import-not-at-top
  from designers.candidates import CandidateSpace  # pylint: disable=g-import-not-at-top
  from designers.seed_region import SeedRegion  # pylint: disable=g-import-not-at-top
  space_def = vz.SearchSpace()
  space_def.root.add_float_param('lr', 1e-4, 1.0, scale_type=vz.ScaleType.LOG)
  space_def.root.add_int_param('width', 1, 10)
  space_def.root.add_categorical_param('opt', ['adam', 'sgd', 'rmsprop'])
  space_def.root.add_float_param('dropout', 0.0, 0.5)
  space = CandidateSpace(space_def)
  # Another study's best trials: no dropout, a category this space lacks, lr out of range.
  best = [vz.Trial(parameters={'lr': 1e-3, 'width': 3, 'opt': 'sgd'}),
          vz.Trial(parameters={'lr': 1e-2, 'width': 5, 'opt': 'lamb'}),
          vz.Trial(parameters={'lr': 10.0, 'width': 4, 'opt': 'adam'})]
  region = SeedRegion.spanning(space, best)
  assert np.allclose(region.low, [0.25, 0.2, 0.0, 0.0])  # width 3 -> cell 2 of 10
  assert np.allclose(region.high, [1.0, 0.5, 1.0, 1.0])  # lr clipped to its edge
  categories = space.axes[2].config.feasible_values  # Vizier keeps them sorted
  assert region.categories[2].tolist() == sorted(categories.index(c) for c in ('adam', 'sgd'))
  assert region.categories[0] is None
  points = space.snap(region.place(np.random.default_rng(0).random((200, 4))))
  params = space.to_parameters(points)
  assert all(1e-3 * (1 - 1e-9) <= p['lr'].value <= 1.0 for p in params)
  assert {int(p['width'].value) for p in params} == {3, 4, 5}
  assert {p['opt'].value for p in params} == {'adam', 'sgd'}
  assert max(p['dropout'].value for p in params) > 0.45  # untouched by the prior studies


def test_with_a_seed_region_the_quasi_random_seeds_stay_where_the_prior_studies_did_well():
  from vizier import algorithms as vza  # pylint: disable=g-import-not-at-top
  _, designer = _designer(seed_region_share=0.2)
  draws = {'x': lambda r: float(r.uniform(-1, 1)), 'opt': lambda r: str(r.choice(['adam', 'sgd']))}
  prior = _trials(draws, 20, 'loss', lambda p: (p['x'] - 0.5) ** 2, 1)
  ranked = sorted(prior, key=lambda t: t.final_measurement.metrics['loss'].value)[:4]
  low, high = (f(t.parameters['x'].value for t in ranked) for f in (min, max))
  designer.set_priors([vza.CompletedTrials(prior)])
  seeds = designer.suggest(3)  # the prior study's best, then two quasi-random seeds
  assert all(low - 1e-9 <= s.parameters['x'].value <= high + 1e-9 for s in seeds)
  assert high - low < 1.0  # a fifth of the trials near x = 0.5: the box is a part of [-1, 1]


@pytest.mark.parametrize('share', [0.0, 1.5])
def test_a_seed_region_share_outside_zero_to_one_is_refused(share):
  from designers.omnipred_designer import OmniPredDesignerConfig  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match='seed_region_share'):
    OmniPredDesignerConfig(seed_region_share=share)


def test_with_parameters_with_priors_the_parameter_choice_scores_the_prior_studies_too():
  from vizier_omnipred.relevance import PooledLikelihood  # pylint: disable=g-import-not-at-top
  config = RelevanceConfig(folds=3, parameters_with_priors=True)
  current, _, other_category = _studies()
  reg = _regressor(config)
  reg.condition(current, prior_studies=[other_category])
  meta, cols = reg.featurizer.metadata(), range(2)
  study = HeldOutLikelihood(reg.base, reg.featurizer.featurize([r for r, _ in current]), meta,
                            [v for _, v in current], views=reg.views, config=config)
  prior = HeldOutLikelihood(reg.base, reg.featurizer.featurize([r for r, _ in other_category]),
                            meta, [v for _, v in other_category], views=reg.views,
                            config=config)
  pooled = PooledLikelihood([study, prior])
  # Every trial weighs alike: 6 of the study's, 8 of the prior study's.
  assert pooled(cols) == pytest.approx((6 * study(cols) + 8 * prior(cols)) / 14)
  assert reg.selection.scores[0] == pytest.approx(pooled(cols), rel=1e-5)
  alone = _regressor(attrs.evolve(config, parameters_with_priors=False))
  alone.condition(current, prior_studies=[other_category])
  assert alone.selection.scores[0] == pytest.approx(study(cols), rel=1e-5)
  # A prior study that shares no parameter with the study has no say; without prior studies
  # the field changes nothing.
  foreign = [({'width': float(w)}, float(w)) for w in range(8)]
  for priors in ([foreign], []):
    for r in (reg, alone):
      r.condition(current, prior_studies=priors)
    assert reg.selection.scores == pytest.approx(alone.selection.scores, rel=1e-5)
