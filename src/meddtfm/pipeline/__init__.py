"""A pipeline API like the ones people know: ``MedDTFMPipeline.from_pretrained(path)(masks=..., seed=0)``.

| module | what lives there |
|---|---|
| ``core`` | ``MedDTFMPipeline`` (alias ``Pipeline``): ``from_pretrained``, ``__call__``, ``save_pretrained`` |
| ``inputs`` | masks and references from tensors, NumPy arrays, PIL images or files, checked (``InputError``) |
| ``models`` | the generator behind it: a Med-DT-FM flow (``Synthesizer``) or a GAN baseline |
| ``output`` | ``PipelineOutput``: images ``(B, C, R, R)`` with ``to_pil``, ``numpy``, ``overlays``, ``differences`` |
| ``card`` | ``model_card.md``: data, budget and measured metrics of the run |
"""
from __future__ import annotations

from .core import CONFIG, MedDTFMPipeline, Pipeline, locate
from .inputs import InputError, as_masks, as_references
from .models import Settings
from .output import PipelineOutput

__all__ = ["CONFIG", "InputError", "MedDTFMPipeline", "Pipeline", "PipelineOutput", "Settings", "as_masks",
           "as_references", "locate"]
