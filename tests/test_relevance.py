import numpy as np
import pytest

from vizier_omnipred import checkpoints
from vizier_omnipred.regressor import OmniPredRegressor
from vizier_omnipred.relevance import HeldOutLikelihood, RelevanceConfig
from vizier_omnipred.relevance import pooled_values, select_parameters, select_prior_studies
from vizier_omnipred.serialization import Featurizer
from tests.conftest import TINY


class TableScore:
  """A held-out NLL given by a table: subset -> nats (the search's only view of a model)."""

  def __init__(self, table: dict, num_trials: int = 30):
    self.table = {frozenset(k): v for k, v in table.items()}
    self.y = np.zeros(num_trials)
    self.calls = []

  def __call__(self, keep):
    self.calls.append(tuple(keep))
    return self.table[frozenset(keep)]


# Columns 0..2; y depends on column 0 only: dropping 1 or 2 helps, dropping 0 hurts.
IRRELEVANT_1_2 = {(0, 1, 2): 3.0, (1, 2): 4.0, (0, 2): 2.5, (0, 1): 2.8,
                  (2,): 4.5, (0,): 2.3, (1,): 4.4}


@pytest.mark.parametrize('config, kept, dropped', [
    (RelevanceConfig(), (0,), (1, 2)),  # column 1 first: it gains more
    # The first drop gains 0.5 nats, the second 0.2: a threshold between stops after one.
    (RelevanceConfig(min_gain=0.3), (0, 2), (1,)),
    (RelevanceConfig(min_gain=0.6), (0, 1, 2), ()),
    (RelevanceConfig(min_kept=2), (0, 2), (1,)),
])
def test_backward_elimination_drops_while_the_likelihood_rises(config, kept, dropped):
  selection = select_parameters(TableScore(IRRELEVANT_1_2), range(3), config=config)
  assert selection.kept == kept and selection.dropped == dropped
  assert selection.scores == tuple([3.0, 2.5, 2.3][:len(dropped) + 1])


def test_always_kept_columns_are_read_and_never_dropped():
  # Column 3 (a metric input) is in every subset scored and in the result.
  table = {k + (3,): v for k, v in IRRELEVANT_1_2.items()}
  score = TableScore(table)
  selection = select_parameters(score, range(3), always=(3,))
  assert selection.kept == (0, 3)
  assert all(3 in call for call in score.calls)


class SumScore:
  """NLL = 1 + 0.1 per relevant column kept missing - 0.01 per irrelevant column dropped:
  columns below `relevant` matter, the rest do not."""

  def __init__(self, d: int, relevant: int):
    self.d, self.relevant, self.calls = d, relevant, 0
    self.y = np.zeros(30)

  def __call__(self, keep):
    self.calls += 1
    missing = [j for j in range(self.d) if j not in keep]
    return 1.0 + sum(0.1 if j < self.relevant else -0.01 for j in missing)


@pytest.mark.parametrize('d, max_scores, bound', [
    (10, 64, 64), (20, 64, 32), (60, 64, 10), (100, 64, 6), (30, 200, 66)])
def test_the_choice_scores_a_bounded_number_of_subsets_at_any_size(d, max_scores, bound):
  """At most max_scores subsets up to 10 parameters, max_scores * 10 / d beyond."""
  score = SumScore(d, relevant=3)
  selection = select_parameters(score, range(d), config=RelevanceConfig(max_scores=max_scores))
  assert score.calls <= bound
  assert set(range(3)) <= set(selection.kept)  # never drops what matters
  if d * (d + 1) // 2 + 1 <= bound:  # within the bound: the exact elimination
    assert selection.kept == (0, 1, 2) and not selection.cut
  elif d + 2 <= bound:  # one full round, then every helpful drop at once
    assert selection.kept == (0, 1, 2) and selection.cut
  else:  # not even one round fits: the helpful drops of the partial round, at once
    assert selection.cut and len(selection.kept) == d - (bound - 2 - 3)


class PriorTableScore:
  """A held-out NLL given by a table: how the prior studies are read -> nats (the columns
  fixed). Keys: a tuple of each study's way, 'c' (a prior study), 'p' (pooled), '-' (left out)."""

  def __init__(self, table: dict, num_priors: int, num_trials: int = 30):
    self.table, self.num_priors = table, num_priors
    self.y, self.calls = np.zeros(num_trials), []

  def __call__(self, keep, priors, pooled=()):
    self.calls.append((tuple(keep), tuple(priors), tuple(pooled)))
    return self.table[''.join('c' if k in priors else 'p' if k in pooled else '-'
                              for k in range(self.num_priors))]


# Prior studies 0..2: study 0 is related (reading it helps), 1 and 2 are not.
RELATED_0 = {'ccc': 3.0, '-cc': 3.4, 'c-c': 2.6, 'cc-': 2.8, 'c--': 2.5, '-c-': 3.5,
             '--c': 3.3, '---': 3.2}
# Study 0 is the same function as the study: pooling it beats reading it as a prior study.
POOL_0 = {'cc': 3.0, '-c': 3.4, 'c-': 2.9, 'pc': 2.0, 'cp': 3.1, 'p-': 1.8, 'pp': 2.2,
          '--': 3.3}


@pytest.mark.parametrize('table, config, modes, scores', [
    (RELATED_0, RelevanceConfig(prior_studies='chosen'), ('context', 'left_out', 'left_out'),
     (3.0, 2.6, 2.5)),
    (RELATED_0, RelevanceConfig(prior_studies='chosen', min_gain=0.2),
     ('context', 'left_out', 'context'), (3.0, 2.6)),
    # None of them helps: every one is left out, down to the study alone.
    ({'cc': 3.0, 'c-': 2.9, '-c': 2.95, '--': 2.8}, RelevanceConfig(prior_studies='chosen'),
     ('left_out', 'left_out'), (3.0, 2.9, 2.8)),
    (POOL_0, RelevanceConfig(prior_studies='pooled'), ('pooled', 'left_out'), (3.0, 2.0, 1.8)),
    (POOL_0, RelevanceConfig(prior_studies='chosen'), ('context', 'left_out'), (3.0, 2.9)),
])
def test_prior_studies_change_their_reading_while_the_likelihood_rises(table, config, modes,
                                                                       scores):
  score = PriorTableScore(table, num_priors=len(next(iter(table))))
  choice = select_prior_studies(score, [0, 1], config=config)
  assert choice.modes == modes and choice.scores == scores and choice.num_trials == 30
  assert choice.kept == tuple(k for k, m in enumerate(modes) if m == 'context')
  assert choice.pooled == tuple(k for k, m in enumerate(modes) if m == 'pooled')
  assert all(call[0] == (0, 1) for call in score.calls)  # the columns stay those given


@pytest.mark.parametrize('config, num_trials', [
    (RelevanceConfig(prior_studies='chosen', prior_min_trials=6), 5),
    (RelevanceConfig(), 30),  # 'all': every prior study is read as one
])
def test_too_few_trials_or_all_read_every_prior_study_unscored(config, num_trials):
  score = PriorTableScore(RELATED_0, num_priors=3, num_trials=num_trials)
  choice = select_prior_studies(score, [0], config=config)
  assert choice.kept == (0, 1, 2) and not score.calls


def test_pooled_values_map_each_prior_study_by_rank_onto_the_study_s_range():
  out = pooled_values([np.array([10.0, -5.0, 3.0]), np.array([7.0, 7.0])], np.array([1.0, 3.0]))
  np.testing.assert_allclose(out, [3.0, 1.0, 2.0, 2.0, 2.0])


def test_too_few_trials_keep_every_parameter_unscored():
  score = TableScore(IRRELEVANT_1_2, num_trials=5)
  selection = select_parameters(score, range(3), config=RelevanceConfig(min_trials=6))
  assert selection.kept == (0, 1, 2) and not score.calls


@pytest.mark.parametrize('field, value', [('folds', 1), ('min_kept', 0), ('views', 0),
                                          ('max_scores', 1), ('prior_studies', 'some')])
def test_bad_config_names_the_field(field, value):
  with pytest.raises(ValueError, match=field):
    RelevanceConfig(**{field: value})


def _study(n: int, d: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2, 2, (n, d))
  return [{f'x{j}': float(v) for j, v in enumerate(r)} for r in x], np.sin(2 * x[:, 0])


def test_held_out_likelihood_is_k_fold_and_depends_on_the_columns():
  rows, y = _study(12, 3)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  featurizer = Featurizer(None)
  context = featurizer.featurize(rows)
  score = HeldOutLikelihood(
      reg.base, context, featurizer.metadata(), y, views=1, config=RelevanceConfig(folds=5))
  # Every trial is a query exactly once.
  assert sorted(np.concatenate(score.folds).tolist()) == list(range(12))
  assert len(score.folds) == 5
  full = score([0, 1, 2])
  assert np.isfinite(full) and full > 0
  assert score([0, 1, 2]) == full  # deterministic
  assert score([0]) != full
  assert context.columns([0, 2]).values.tolist() == context.values[:, [0, 2]].tolist()


def test_the_regressor_reads_only_the_kept_parameters_and_still_checks_all():
  rows, y = _study(12, 3)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0, relevance=RelevanceConfig())
  reg.condition(list(zip(rows, y)))
  kept = reg.selection.kept
  assert 1 <= len(kept) <= 3 and reg.num_context == 12
  assert reg.parameters_read == [f'x{j}' for j in kept]
  samples = reg.sample(rows[:3], 4)
  assert samples.shape == (3, 4) and np.isfinite(samples).all()
  # A query is validated on every parameter, read or not.
  dropped = sorted(set(range(3)) - set(kept)) or [0]
  bad = dict(rows[0], **{f'x{dropped[0]}': 'oops'})
  with pytest.raises(ValueError, match=f'x{dropped[0]}'):
    reg.sample([bad], 2)
  # A new study from the same regressor inherits the setting; None turns it off.
  assert reg.for_new_study().relevance == RelevanceConfig()
  off = reg.for_new_study(relevance=None)
  off.condition(list(zip(rows, y)))
  assert off.selection is None and off.parameters_read is None


@pytest.mark.skipif(not checkpoints.SHIPPED.exists(), reason='no shipped checkpoint')
def test_the_shipped_model_finds_the_one_parameter_y_depends_on():
  """y = sin(2 x0) among 4 parameters, 30 trials: read whole, the shipped model predicts no
  better than the trials' median (study error ~0.26); it keeps x0 alone and then predicts."""
  rows, y = _study(80, 4)
  base = OmniPredRegressor.from_pretrained()
  errors = {}
  for name, relevance in (('all', None), ('selected', RelevanceConfig())):
    reg = base.for_new_study(relevance=relevance)
    reg.condition(list(zip(rows[:30], y[:30])))
    median = reg.quantiles(rows[30:], (0.5,))[:, 0]
    errors[name] = float(np.mean(np.abs(median - y[30:])) / np.ptp(y))
    if relevance is not None:
      assert reg.selection.kept == (0,) and reg.parameters_read == ['x0']
  assert errors['selected'] < 0.3 * errors['all'], errors


def test_a_grown_context_reuses_the_selection_until_it_grows_by_refresh_growth():
  rows, y = _study(30, 3)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0,
                                       relevance=RelevanceConfig(refresh_growth=0.2))
  reg.condition(list(zip(rows[:20], y[:20])))
  first = reg.selection
  reg.condition(list(zip(rows[:23], y[:23])))  # 15% more: reused
  assert reg.selection is first and reg.num_context == 23
  reg.condition(list(zip(rows[:24], y[:24])))  # 20% more: chosen again
  assert reg.selection.num_trials == 24
  reg.condition(list(zip(rows[:12], y[:12])))  # fewer trials: another context, chosen again
  assert reg.selection.num_trials == 12
  always = OmniPredRegressor.from_scratch(TINY, seed=0, relevance=RelevanceConfig())
  always.condition(list(zip(rows[:20], y[:20])))
  always.condition(list(zip(rows[:21], y[:21])))
  assert always.selection.num_trials == 21
