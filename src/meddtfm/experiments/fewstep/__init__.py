"""``meddtfm reproduce fewstep``: a trained flow against its few-step students, NFE by NFE, and a GAN's one pass."""
from .study import FewStep

__all__ = ["FewStep"]
