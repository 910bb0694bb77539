"""Networks: the KAN layer, the U-KAN teacher (EM) and the generator's parts."""

from meddtfm.models.kan import KANLinear
from meddtfm.models.ukan import UKAN, FrozenTeacher

__all__ = ["KANLinear", "UKAN", "FrozenTeacher"]
