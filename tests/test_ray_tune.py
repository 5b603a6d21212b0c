"""`OmniPredSampler` inside Ray Tune (`OptunaSearch(sampler=...)`) on a real local Ray: the
suggestions are made on the driver, the trials run as Ray tasks, two at a time."""

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from designers.omnipred_designer import OmniPredDesignerConfig
from designers.optuna_sampler import OmniPredSampler, OmniPredSamplerConfig
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig

ray = pytest.importorskip('ray')  # installed by `make test` (the [ray] extra)


def _trainable(config):
  from ray import tune  # pylint: disable=g-import-not-at-top
  loss = (config['x'] - 0.3) ** 2 + 0.1 * abs(config['layers'] - 3) + (config['opt'] == 'sgd')
  tune.report({'loss': loss})


_RAY_START_TIMEOUTS = ('timed out during startup', 'Timed out waiting for file')


def test_eight_trials_two_at_a_time_through_optuna_search(tmp_path, tiny_checkpoint_file):
  from ray import tune  # pylint: disable=g-import-not-at-top
  from ray.tune.search.optuna import OptunaSearch  # pylint: disable=g-import-not-at-top
  sampler = OmniPredSampler(
      seed=0,
      config=OmniPredSamplerConfig(designer=OmniPredDesignerConfig(
          num_seed_trials=3, num_candidates=64, num_samples=8)),
      surrogate_factory=LMSurrogate.factory(LMSurrogateConfig(checkpoint=tiny_checkpoint_file)))
  space = {'x': FloatDistribution(0.0, 1.0), 'layers': IntDistribution(1, 6),
           'opt': CategoricalDistribution(['adam', 'sgd'])}
  # Ray's own temporary folder: its socket paths must stay under 107 bytes, which pytest's
  # tmp_path is too deep for.
  # A Ray node that misses one of Ray's fixed start-up waits (the raylet's 30 s, or the wait for
  # the GCS port file; both seen on a loaded 2-core machine) gets up to two more tries.
  for attempt in range(3):
    try:
      ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
               configure_logging=False)
      break
    except Exception as e:  # pylint: disable=broad-except  # Ray raises a bare Exception
      ray.shutdown()
      if attempt == 2 or not any(m in str(e) for m in _RAY_START_TIMEOUTS):
        raise
  try:
    tuner = tune.Tuner(
        _trainable,
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(space=space, metric='loss', mode='min', sampler=sampler),
            num_samples=8, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path / 'results'), verbose=0))
    results = tuner.fit()
  finally:
    ray.shutdown()
  assert len(results) == 8 and not results.errors
  configs = [tuple(sorted(r.config.items())) for r in results]
  assert len(set(configs)) == 8
  best = results.get_best_result(metric='loss', mode='min')
  assert best.metrics['loss'] == min(r.metrics['loss'] for r in results)
