"""vizier-omnipred: an OmniPred-style language-model surrogate for Open Source Vizier."""

import os as _os

# Two torch threads collapse when the other core is busy unless OpenMP threads sleep when
# idle (measured: training 92 -> 179 ex/s). Only takes effect if torch is not imported yet.
_os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from vizier_omnipred.model import ModelConfig, OmniPredModel  # noqa: E402
from vizier_omnipred.multi_objective import MultiObjectiveRegressor  # noqa: E402
from vizier_omnipred.numbers import NumberCodec  # noqa: E402
from vizier_omnipred.regressor import (  # noqa: E402
    FineTuneConfig, FineTuneReport, OmniPredRegressor, Prediction, YScaler, default_device)
from vizier_omnipred.relevance import RelevanceConfig  # noqa: E402
from vizier_omnipred.serialization import Featurizer, FeaturizerConfig, StudyInfo  # noqa: E402

__all__ = [
    'FineTuneConfig', 'FineTuneReport', 'Featurizer', 'FeaturizerConfig', 'ModelConfig',
    'MultiObjectiveRegressor', 'NumberCodec', 'OmniPredModel', 'OmniPredRegressor', 'Prediction',
    'RelevanceConfig', 'StudyInfo', 'YScaler', 'default_device',
]
