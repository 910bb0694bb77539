"""Synthetic training data for segmentation (``meddtfm augment``): varied real masks, any generator, a ready-to-train
folder with its manifest, resumable, with an optional quality filter by the independent segmenter."""
from .folder import AugmentFolder, AugmentFolderError
from .run import AugmentError, AugmentSpec, AugmentSummary, augment, lesion_dice
from .sources import HealthyReferences, Source, dataset_sources, folder_sources
from .variation import MaskVariation

__all__ = ["AugmentError", "AugmentFolder", "AugmentFolderError", "AugmentSpec", "AugmentSummary",
           "HealthyReferences", "MaskVariation", "Source", "augment", "dataset_sources", "folder_sources",
           "lesion_dice"]
