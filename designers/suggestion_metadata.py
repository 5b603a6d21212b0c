"""What a model-phase suggestion's metadata says about how it was chosen.

Everything goes under the `omnipred` namespace of `TrialSuggestion.metadata`, as strings:
phase ('seed', 'model' or 'quadratic_step'), the acquisition actually used, the surrogate's
report (parameters read, prior studies read and how many of their trials, and with the
'averaged' reading the share of the predictions that read them), how many candidates a search
scored, trials left out of the model and why a suggestion was degraded.
"""

from __future__ import annotations

import logging

NAMESPACE = 'omnipred'
# Report keys of the surrogate copied as they are.
_REPORT_KEYS = ('parameters_read', 'prior_studies', 'prior_trials', 'prior_pooled',
                'prior_weight')


def describe_model_choice(md, report: dict, *, acquisition: str, searched: int,
                          local: set | None, left_out: int, degraded: str | None) -> None:
  """Writes into `md` (a metadata namespace) what chose a model-phase suggestion."""
  md['phase'] = 'model'
  md['acquisition'] = acquisition
  md['training_steps'] = str(report.get('training_steps', 0))
  if searched:
    md['searched_candidates'] = str(searched)
  if local is not None:
    md['local_context'] = str(len(local))
  for key in _REPORT_KEYS:
    if key in report:
      md[key] = str(report[key])
  if report.get('parameters_read_cut'):
    md['parameters_read_cut'] = 'the choice stopped at its bound (RelevanceConfig.max_scores)'
  if left_out:
    md['left_out_trials'] = str(left_out)
  if degraded:
    md['degraded'] = degraded
    logging.info('OmniPredDesigner degraded: %s', degraded)


def describe_quadratic_step(md, step) -> None:
  """Writes into `md` what chose a local quadratic model's step (`quadratic_step.Step`)."""
  md['phase'] = 'quadratic_step'
  md['quadratic_fit'] = f'{step.fit:.4f}'
  md['quadratic_predicted_decrease'] = f'{step.predicted:.4g}'
  md['quadratic_fitted_trials'] = str(step.fitted)
  md['quadratic_radius'] = f'{step.radius:.4g}'


def predicted_medians(md, metric_names: list[str], medians: list[float]) -> None:
  """The surrogate's median prediction of each metric, in its units: `predicted_median` for
  one objective, `predicted_median:<metric>` for each of several."""
  keys = (['predicted_median'] if len(metric_names) == 1
          else [f'predicted_median:{name}' for name in metric_names])
  for key, median in zip(keys, medians):
    md[key] = f'{median:.6g}'
