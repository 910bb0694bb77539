"""Synthesis with a trained Med-DT-FM generator (paper §2.3).

| module | what lives there |
|---|---|
| ``synthesizer`` | ``load_generator``, ``Synthesizer`` (noise-based Eq. 7, reference-guided Eq. 6), input files |
| ``conditions`` | ``gather_conditions``: masks, captions and references from folders or a dataset split |
| ``jobs`` | ``SampleJob`` (condition, draw, seed), ``run_batch``, ``write_images``, ``write_case`` (a whole case) |
| ``few_step`` | ``sampling_spec`` (``--solver auto``), the checks of a ``distill-steps`` generator |
"""
from __future__ import annotations

from .conditions import ConditionSetError, SampleCondition, condition_files, dataset_conditions, gather_conditions
from .few_step import AUTO, sampling_spec
from .jobs import BatchResult, ReferenceEdit, SampleJob, run_batch, sample_jobs, write_case, write_images
from .synthesizer import (
                          ConditionError,
                          GeneratorMeta,
                          Start,
                          Synthesizer,
                          load_generator,
                          one_hot_mask,
                          read_mask_array,
                          read_mask_file,
                          read_reference_file,
                          training_data_config,
)

__all__ = ["AUTO", "BatchResult", "ConditionError", "ConditionSetError", "GeneratorMeta", "ReferenceEdit",
           "SampleCondition", "SampleJob", "Start", "Synthesizer", "condition_files", "dataset_conditions",
           "gather_conditions", "load_generator", "one_hot_mask", "read_mask_array", "read_mask_file",
           "read_reference_file", "run_batch", "sample_jobs", "sampling_spec", "training_data_config", "write_case",
           "write_images"]
