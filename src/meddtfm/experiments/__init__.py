"""Studies: each trains a set of runs from a preset, scores them alike and writes its tables and figures.

A study is a subpackage (``table1``: the paper's Table 1, Fig. 2 and a convergence plot) with its presets as
package data in ``STUDY/presets/NAME.yaml``. What studies share sits here:

* ``presets``: a preset's schema (datasets, per-run overrides, how to score) and loading it by name.
* ``scope``: the command line's ``--datasets``, ``--set DATASET:key=value`` and ``DATASET=FILE`` values.
* ``budget``: one training budget (images seen) for every compared run, and its check.
* ``runs``: a run trained once into its folder, reused when finished, refused when started with other settings.
* ``compare``: several generators scored identically on one split (``meddtfm evaluate``'s machinery).
* ``convergence``: validation curves over a run's training checkpoints.
* ``figures``: labelled image grids and line plots (PIL).

The CLI sits above this package and owns the training entry points; it hands them in (``runs.Trainers``).
"""
