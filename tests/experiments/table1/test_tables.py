"""Table 1's files: each dataset block its own columns (BraTS's regions and sequences only where it has them), one
csv over the union of the columns, and the U-Net's ceiling, BraTS's regions included."""
import csv

from meddtfm.experiments.table1.methods import METHODS
from meddtfm.experiments.table1.tables import Block, Row, markdown_block, write_tables

BRATS = ("flair", "t1", "t1ce", "t2")
REGIONS = {"dice_wt/mean": 0.9, "dice_tc/mean": 0.8, "dice_et/mean": 0.7, "hd95_wt/mean": 4.0,
           "hd95_tc/mean": 5.0, "hd95_et/mean": 6.0}


def _summary(values: dict[str, float]) -> dict[str, dict]:
    return {k: {"mean": v, "std": None, "n": 1} for k, v in values.items()}


def _row(method, values: dict[str, float]) -> Row:
    return Row(method, _summary(values), 8, 32, 1.0)


def _brats() -> Block:
    rows = [_row(m, {"frd/mean": 2.0, "ssim/mean": 0.5, "dice_present/mean": 0.6, **REGIONS, "dice_wt/mean": w,
                     **{f"frd/{s}": 1.0 + i for i, s in enumerate(BRATS)},
                     **{f"ssim/{s}": 0.4 for s in BRATS}})
            for m, w in zip(METHODS, (0.45, 0.6, 0.81, 0.9))]
    reference = {"dice_present/mean": 0.7, **REGIONS}
    return Block("brats2021", "BraTS.", rows, reference, {"fid": "needs --inception-weights FILE"}, [],
                 average_of=4, sequences=BRATS, regions=True)


def _lgg() -> Block:
    rows = [_row(m, {"frd/mean": 3.0, "ssim/mean": 0.6, "dice_present/mean": 0.5}) for m in METHODS]
    return Block("lgg", "LGG.", rows, {"dice_present/mean": 0.75}, {"fid": "needs --inception-weights FILE"},
                 ["brats_regions: not computed, the classes are FLAIR abnormality, not BraTS's NCR, ED, ET"],
                 average_of=4)


def _header(markdown: str) -> list[str]:
    line = next(x for x in markdown.splitlines() if x.startswith("| Method |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_a_brats_block_shows_the_regions_and_sequences_an_lgg_block_does_not():
    brats, lgg = _header(markdown_block(_brats())), _header(markdown_block(_lgg()))
    assert brats[brats.index("Dice ↑") + 1:] == [
        "Dice WT ↑", "Dice TC ↑", "Dice ET ↑", "HD95 WT ↓", "HD95 TC ↓", "HD95 ET ↓", "FRD FLAIR ↓", "FRD T1 ↓",
        "FRD T1ce ↓", "FRD T2 ↓", "SSIM FLAIR ↑", "SSIM T1 ↑", "SSIM T1ce ↑", "SSIM T2 ↑"]
    assert lgg[-1] == "Dice ↑" and not any("WT" in c or "FLAIR" in c for c in lgg)
    line = next(x for x in markdown_block(_brats()).splitlines() if x.startswith("| Med-DT-FM |"))
    assert line.endswith("| 0.9 | 0.8 | 0.7 | 4 | 5 | 6 | 1 | 2 | 3 | 4 | 0.4 | 0.4 | 0.4 | 0.4 |")


def test_the_ceiling_of_brats_gives_the_regions_and_each_methods_wt_fraction():
    text = markdown_block(_brats())
    assert "Dice (lesion-present classes) of the same U-Net on the real test images (the ceiling): 0.7." in text
    assert ("BraTS regions of the same U-Net on the real test images (the ceiling): Dice WT 0.9, TC 0.8, ET 0.7; "
            "HD95 (px) WT 4, TC 5, ET 6.") in text
    assert ("Dice WT as a fraction of the ceiling: pix2pixHD 0.5, MedGAN 0.6667, Ours (no DT) 0.9, Med-DT-FM 1."
            in text)
    lgg = markdown_block(_lgg())
    assert "the ceiling): 0.75." in lgg and "BraTS regions" not in lgg.split("Notes:")[0] and "WT" not in lgg


def test_the_csv_has_the_union_of_the_columns_and_empty_cells_where_a_dataset_has_none(tmp_path):
    write_tables(tmp_path, [_lgg(), _brats()], ["preamble"])
    with open(tmp_path / "table1.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert header.index("Dice") < header.index("Dice WT") < header.index("HD95 ET") < header.index("FRD FLAIR") \
        < header.index("SSIM T2") < header.index("steps")
    lgg, brats = rows[0], rows[-1]
    assert (lgg["dataset"], brats["dataset"], brats["method"]) == ("lgg", "brats2021", "Med-DT-FM")
    assert all(lgg[c] == lgg[f"{c}_std"] == "" for c in ("Dice WT", "HD95 ET", "FRD FLAIR", "SSIM T2"))
    assert lgg["Dice"] == "0.5" and lgg["FID"] == brats["FID"] == "n/a"
    assert (brats["Dice WT"], brats["HD95 TC"], brats["FRD T1ce"], brats["SSIM FLAIR"]) == ("0.9", "5.0", "3.0", "0.4")
    assert brats["steps"] == "8"
