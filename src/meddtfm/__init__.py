"""meddtfm: Med-DT-FM, conditional flow matching with multi-scale distillation from a frozen U-KAN encoder.

``from meddtfm import MedDTFMPipeline`` loads ``meddtfm.pipeline`` on first use, so ``import meddtfm`` stays light.
"""
from __future__ import annotations

__version__ = "0.1.0"

_PIPELINE = ("MedDTFMPipeline", "Pipeline", "PipelineOutput", "InputError")


def __getattr__(name: str) -> object:
    if name in _PIPELINE:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'meddtfm' has no attribute {name!r}")


__all__ = ["__version__", *_PIPELINE]
