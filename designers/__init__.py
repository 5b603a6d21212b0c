"""Vizier-facing parts: the OmniPred designer, acquisition functions, candidate search, the
local quadratic step.

`OmniPredDesigner` and `OmniPredDesignerConfig` load on first use, so that a program can call
`vizier_omnipred.runtime.configure_openmp()` after importing its command-line module.
"""

from __future__ import annotations

from vizier_omnipred import lazy_exports

__all__ = ['OmniPredDesigner', 'OmniPredDesignerConfig', 'QuadraticStepConfig']


__getattr__ = lazy_exports.getattr_for(
    __name__, {'OmniPredDesigner': 'omnipred_designer',
               'OmniPredDesignerConfig': 'omnipred_designer',
               'QuadraticStepConfig': 'quadratic_step'})
