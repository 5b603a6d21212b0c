"""Vizier-facing parts: the OmniPred designer, acquisition functions, candidate search."""

from designers import vizier_fixes

vizier_fixes.apply()  # nested conditional spaces over gRPC (google-vizier 0.1.24 drops them)


from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig  # noqa: E402

__all__ = ['OmniPredDesigner', 'OmniPredDesignerConfig']
