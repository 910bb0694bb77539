"""Which recipe to make the default: named Med-DT-FM variants at equal images seen (``meddtfm reproduce ablation``).

Per dataset of the preset: the U-KAN teacher and the evaluation U-Net (``pretrain-encoder``, as Table 1),
then every selected variant (a name, a description, config overrides) once per training seed, all with one
budget of images seen, up to ``--jobs`` at once; every finished run is scored on the **validation split**
(never the test split: this study is where recipes are chosen). OUT holds:

| path | what |
|---|---|
| ``ablation.md``, ``.csv`` | per dataset, one row per variant: FRD, Dice, SSIM, SSIM avg-K (mean ± std over |
| | training seeds, marked where they differ from the reference), images seen, steps, train seconds |
| ``convergence.png``, ``.csv`` | validation FRD (else ``L_FM``) vs images seen per variant, mean over seeds |
| ``bars.png`` | FRD and Dice per variant, with their std over seeds |
| ``preset.yaml`` | the preset as last run, with its variants |
| ``DATASET/{teacher,segmenter}/`` | the segmenter stages |
| ``DATASET/VARIANT/`` | ``variant.yaml``, and per training seed its run ``seedK/`` (``train.log`` if ``--jobs`` > 1) |
| ``DATASET/eval/VARIANT/seedK/`` | the run's ``metrics.json`` / ``.md`` and ``convergence.json``, reused on reruns |

A run folder with ``final.safetensors`` is reused, one with checkpoints resumes; either must hold the same
configuration, else the study stops before training. Modules: ``preset`` (schema, variants), ``plan`` (runs
and checks), ``score`` (finding and scoring runs), ``tables`` (the files), ``study`` (the stages, in order).
"""
