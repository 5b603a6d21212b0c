"""vizier-omnipred: an OmniPred-style language-model surrogate for Open Source Vizier.

The names below load on first use, so importing a submodule (e.g. `vizier_omnipred.runtime`,
which a program calls before torch loads) does not import torch.
"""

from __future__ import annotations

from vizier_omnipred import lazy_exports

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


__getattr__ = lazy_exports.getattr_for(__name__, _EXPORTS)


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
