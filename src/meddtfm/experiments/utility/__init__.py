"""``meddtfm reproduce utility``: do synthetic images help a segmenter on real test patients?"""
from .study import Utility

__all__ = ["Utility"]
