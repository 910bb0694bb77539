"""``runner.METRICS``: the metrics by name, each a ``RunMetric``; a new one plugs in as one class."""
import pytest
import torch
from click.testing import CliRunner

from meddtfm.cli.main import cli
from meddtfm.evaluation import runner
from meddtfm.evaluation.runner import METRICS, Evaluation, RunMetric, Setup
from meddtfm.registry import Registry, UnknownNameError


def _batches() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand((3, 1, 16, 16), generator=g) * 2 - 1
    return [{"fake": image.clamp(-1, 1), "target": image, "has_target": torch.ones(3, dtype=torch.bool),
             "mask": torch.zeros((3, 1, 16, 16)), "has_mask": torch.zeros(3, dtype=torch.bool)}]


def test_every_metric_is_a_run_metric_with_a_description():
    assert METRICS.names() == ("paired", "dice", "brats_regions", "frd", "fid")
    assert all(issubclass(METRICS[name], RunMetric) and METRICS.entry(name).description for name in METRICS)


def test_unknown_metrics_and_missing_networks_are_refused(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown metric 'lpips'; choose from paired, dice, brats_regions, fr"):
        Evaluation(Setup(("paired", "lpips"), ("c0",), ("lesion",), tmp_path))
    with pytest.raises(ValueError, match="dice needs the evaluation segmenter"):
        Evaluation(Setup(("dice",), ("c0",), ("lesion",), tmp_path))
    with pytest.raises(ValueError, match="fid needs the FID InceptionV3"):
        Evaluation(Setup(("fid",), ("c0",), ("lesion",), tmp_path))


class MeanIntensity(RunMetric):
    """The mean pixel of a run: a metric written as one class."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.total, self.count = 0.0, 0

    def update(self, batch: dict, images: torch.Tensor) -> None:
        self.total, self.count = self.total + images.sum().item(), self.count + images.numel()

    def compute(self, real, fake, label: str) -> tuple[dict[str, float], list[str]]:
        return {"mean_intensity": self.total / self.count}, ["mean_intensity: the mean pixel"]


def test_a_registered_metric_runs_beside_the_others(tmp_path, monkeypatch):
    extended: Registry[type[RunMetric]] = Registry("metric")
    for name in METRICS:
        extended.add(name, METRICS.entry(name).description, METRICS[name])
    extended.add("mean", "the mean pixel", MeanIntensity)
    monkeypatch.setattr(runner, "METRICS", extended)
    evaluation = Evaluation(Setup(("mean", "paired"), ("c0",), ("lesion",), tmp_path))
    out = evaluation.run(_batches(), "x")
    assert out["ssim/mean"] == pytest.approx(1.0)
    assert out["mean_intensity"] == pytest.approx(_batches()[0]["fake"].mean())
    assert list(out)[-1] == "mean_intensity", "metrics run in registry order, not in the order asked"
    assert evaluation.notes[-1] == "mean_intensity: the mean pixel" and evaluation.counts["x"]["pairs"] == 3


def test_the_cli_offers_every_metric():
    text = " ".join(CliRunner().invoke(cli, ["evaluate", "--help"]).output.split())
    assert "[default: paired,dice,brats_regions,frd,fid]" in text and all(f"{name}: " in text for name in METRICS)
    result = CliRunner().invoke(cli, ["evaluate", "--metrics", "paired,lpips"])
    assert result.exit_code == 2 and "choose from paired, dice, brats_regions, frd, fid" in result.output
