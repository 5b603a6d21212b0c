"""vizier-omnipred: an OmniPred-style language-model surrogate for Open Source Vizier.

The names below load on first use, so importing a submodule (e.g. `vizier_omnipred.runtime`,
which a program calls before torch loads) does not import torch.
"""

from __future__ import annotations

import importlib
import importlib.util

_EXPORTS = {
    'ModelConfig': 'model', 'OmniPredModel': 'model',
    'MultiObjectiveRegressor': 'multi_objective',
    'NumberCodec': 'numbers',
    'FineTuneConfig': 'regressor', 'FineTuneReport': 'regressor',
    'OmniPredRegressor': 'regressor', 'Prediction': 'regressor', 'YScaler': 'regressor',
    'default_device': 'regressor',
    'RelevanceConfig': 'relevance',
    'Featurizer': 'serialization', 'FeaturizerConfig': 'serialization',
    'StudyInfo': 'serialization',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  """An export above, or a submodule by name (`vizier_omnipred.checkpoints`)."""
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f'vizier_omnipred.{_EXPORTS[name]}'), name)
  elif importlib.util.find_spec(f'{__name__}.{name}') is not None:
    value = importlib.import_module(f'{__name__}.{name}')
  else:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
