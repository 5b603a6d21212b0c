"""Vizier-facing parts: the OmniPred designer, acquisition functions, candidate search."""

from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig

__all__ = ['OmniPredDesigner', 'OmniPredDesignerConfig']
