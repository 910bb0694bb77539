"""meddtfm: Med-DT-FM, conditional flow matching with multi-scale distillation from a frozen U-KAN encoder."""

__version__ = "0.1.0"
