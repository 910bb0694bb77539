"""Studies: each trains a set of runs from a preset, scores them alike and writes its tables and figures.

A study is a subpackage with its presets as package data in ``STUDY/presets/NAME.yaml``: ``table1`` (the
paper's Table 1, Fig. 2 and a convergence plot, on the test split), ``ablation`` (named variants of the
recipe over training seeds, on the validation split), ``utility`` (a segmenter trained with and without
synthetic images, on the real test split) and ``fewstep`` (a flow against its few-step students and a
GAN, NFE by NFE). What studies share sits here:

* ``presets``: a preset's schema (datasets, per-run overrides, how and on which split to score), loading it.
* ``scope``: the command line's ``--datasets``, ``--set DATASET:key=value`` and ``DATASET=FILE`` values.
* ``stages``: a dataset's run configs, its teacher and evaluation U-Net stages, the data checks.
* ``budget``: one training budget (images seen) for every compared run, and its check.
* ``runs``: a run trained once into its folder, reused when finished, refused when started with other settings.
* ``parallel``: several runs at once, each a ``meddtfm train`` (or ``distill-steps``) child process of its folder.
* ``compare``: several generators scored identically on one split (``meddtfm evaluate``'s machinery).
* ``columns``: the tables' metric columns, the metrics that can be computed, their cells.
* ``convergence``: validation curves over a run's training checkpoints.
* ``figures``: labelled image grids, line plots and bar charts (PIL).

The CLI sits above this package and owns the training entry points; it hands them in (``runs.Trainers``).
"""
