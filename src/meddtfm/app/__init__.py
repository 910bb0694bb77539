"""The interactive web demo of ``meddtfm serve`` (Gradio, an optional extra: ``pip install 'meddtfm[demo]'``).

| module | what lives there |
|---|---|
| ``requests`` | one Generate press without Gradio: masks (file or drawing), reference, settings -> images, PNG |
| ``references`` | healthy slices of the training data's test split to pick as references |
| ``demo`` | the Gradio page (``build_demo``) and ``launch``; imports gradio, so import it only when serving |
"""
from __future__ import annotations

from .references import healthy_slices
from .requests import Request, Result, run

__all__ = ["Request", "Result", "healthy_slices", "run"]
