"""Vizier-facing parts: the OmniPred designer, acquisition functions, candidate search.

`OmniPredDesigner` and `OmniPredDesignerConfig` load on first use, so that a program can call
`vizier_omnipred.runtime.configure_openmp()` after importing its command-line module.
"""

from __future__ import annotations

from vizier_omnipred import lazy_exports

__all__ = ['OmniPredDesigner', 'OmniPredDesignerConfig']


__getattr__ = lazy_exports.getattr_for(
    __name__, {name: 'omnipred_designer' for name in __all__})
