"""Evaluation of synthetic images (docs/design.md, "Evaluation"): paired, mask-consistency and distribution metrics.

* ``metrics``: SSIM, MS-SSIM, PSNR against the real image whose mask conditioned the synthesis.
* ``consistency``: Dice / IoU of the independent MONAI U-Net segmenter (never the U-KAN teacher).
* ``distribution``: FRD (frd-score), FID and KID (torchmetrics on the FID InceptionV3 of ``inception``).
* ``runner``: one evaluation over runs; ``generation``: synthetic images from a checkpoint.
* ``report``: mean +- std over runs, JSON and a markdown table.

Submodules are imported on use: FRD's and the networks' dependencies load only when needed.
"""
