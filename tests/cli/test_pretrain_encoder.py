"""README stage 1 on each shared set: ``pretrain-encoder`` writes a U-KAN that ``load_teacher`` turns into EM."""
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from meddtfm.cli.main import cli
from meddtfm.models.segmenters import load_teacher

from ..conftest import shared_dataset

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# preset, folder under ../shared/data, extra overrides (the shared BraTS cases lack T1 and T2)
SETS = {
    "lgg": ("lgg/kaggle_3m", []),
    "isic2019": ("isic2019", []),
    "brats2021": ("brats2021", ["data.modalities=[flair,t1ce]"]),
}
TINY = ["data.resolution=64", "data.batch_size=4", "data.num_workers=0", "train.steps=2", "train.val_every=2",
        "train.log_every=1", "encoder.widths=[8,16,24,32,48]"]


@pytest.mark.parametrize("name", list(SETS))
def test_teacher_from_the_documented_command(name, tmp_path, monkeypatch):
    folder, extra = SETS[name]
    root = shared_dataset(folder)
    monkeypatch.setenv("MEDDTFM_CACHE", str(tmp_path / "cache"))
    sets = [arg for kv in [f"data.root={root}", *extra, *TINY] for arg in ("--set", kv)]
    out = tmp_path / "ukan"
    result = CliRunner().invoke(cli, ["pretrain-encoder", "--config", str(CONFIGS / f"{name}.yaml"), *sets,
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    teacher, meta = load_teacher(out / "best.safetensors")
    assert meta["data"]["name"] == name and meta["seed"] == 0
    channels = len(meta["channel_names"])
    assert channels == {"lgg": 3, "isic2019": 3, "brats2021": 2}[name]
    feats = teacher(torch.zeros(2, channels, 64, 64))
    assert [f.shape for f in feats] == [(2, 48, 2, 2), (2, 32, 4, 4), (2, 24, 8, 8), (2, 16, 16, 16)]
    assert all(not f.requires_grad and torch.isfinite(f).all() for f in feats)


def test_rerun_resumes_resume_picks_a_state_and_fresh_starts_over(tmp_path, caplog):
    caplog.set_level("INFO", logger="meddtfm.training.loop")
    out = tmp_path / "ukan"
    base = ["pretrain-encoder", "--out", str(out)] + [a for kv in [
        "data.phantom_count=24", "data.resolution=32", "data.batch_size=4", "data.num_workers=0",
        "encoder.widths=[4,8,16,24,32]", "train.checkpoint_every=1", "train.keep_checkpoints=5", "train.val_every=1",
        "train.warmup_steps=1"] for a in ("--set", kv)]

    def run(steps: int, *extra: str) -> str:
        caplog.clear()
        result = CliRunner().invoke(cli, [*base, "--set", f"train.steps={steps}", *extra])
        assert result.exit_code == 0, result.output
        return result.output + caplog.text

    def states() -> list[str]:
        return sorted(p.name for p in (out / "checkpoints").glob("step_*.pt"))

    assert "for 2 steps" in run(2) and states() == ["step_0000001.pt", "step_0000002.pt"]
    assert "step_0000002.pt at step 2" in run(3) and states()[-1] == "step_0000003.pt"
    assert "step_0000001.pt at step 1" in run(2, "--resume", str(out / "checkpoints" / "step_0000001.pt"))
    fresh = run(1, "--fresh")
    assert "resumed" not in fresh and "for 1 steps" in fresh and states() == ["step_0000001.pt"]
