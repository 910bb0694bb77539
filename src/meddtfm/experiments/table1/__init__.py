"""The paper's Table 1, Fig. 2 and a convergence plot, trained and measured (``meddtfm reproduce table1``).

Per dataset of the preset: the U-KAN teacher and the evaluation U-Net (``pretrain-encoder``), then
pix2pixHD, MedGAN, Ours (no DT) and Med-DT-FM (``meddtfm train``) with one budget, scored identically
(``experiments.compare``). OUT holds:

| path | what |
|---|---|
| ``table1.md``, ``table1.csv`` | one block per dataset, rows as in the paper, columns FRD FID SSIM MS-SSIM PSNR Dice |
| ``fig2.png`` | input mask, pix2pixHD, MedGAN, Ours: same masks and seed for all |
| ``convergence.png``, ``.csv`` | validation FRD (else validation ``L_FM``) vs steps, Med-DT-FM and no DT |
| ``preset.yaml`` | the preset as run |
| ``DATASET/{teacher,segmenter,METHOD}/`` | the training runs (``train_result.json``: steps and seconds) |
| ``DATASET/eval/METHOD/`` | ``metrics.json`` / ``metrics.md`` of each method, as ``meddtfm evaluate`` writes them |

A run folder with ``final.safetensors`` is reused, one with checkpoints resumes; either must hold the same
configuration, else the study stops before training. Modules: ``methods`` (rows, Fig. 2), ``preset``,
``plan`` (runs and checks), ``score``, ``tables`` (the files), ``study`` (the stages, in order).
"""
