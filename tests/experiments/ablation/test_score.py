"""``ablation.score.same_weights``: a variant whose training its overrides did not change is named."""
import torch

from meddtfm.checkpoint import save_weights
from meddtfm.config import Config
from meddtfm.experiments.ablation.preset import Variant
from meddtfm.experiments.ablation.score import Found, same_weights


def _run(tmp_path, name, seed, weight, config=None):
    folder = tmp_path / name / f"seed{seed}"
    save_weights({"w": torch.full((2, 2), weight)}, folder / "final.safetensors", config or {"name": name})
    return Found(Variant(name=name), seed, folder, Config(), {"step": 4, "seconds": 1.0})


def test_a_variant_with_the_references_weights_is_named_per_seed(tmp_path):
    found = {"paper": [_run(tmp_path, "paper", 0, 1.0), _run(tmp_path, "paper", 1, 2.0)],
             "ema_half": [_run(tmp_path, "ema_half", 0, 1.0), _run(tmp_path, "ema_half", 1, 2.5)],
             "raw": [_run(tmp_path, "raw", 0, 1.5)],
             "extra": [_run(tmp_path, "extra", 2, 1.0)]}
    assert same_weights(found, "paper") == [
        "ema_half trained to the same weights as paper (seed 0): at this budget its overrides change nothing"], \
        "another seed's weights (extra) or other values (raw, ema_half seed 1) are no match; metadata is ignored"
    assert same_weights({"raw": found["raw"]}, "paper") == [], "no reference run: nothing to compare"
