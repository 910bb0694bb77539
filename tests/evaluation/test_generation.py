"""Mode B batches: which synthetic images are paired with a real one, and the average of K draws."""
import pytest
import torch

from meddtfm.evaluation.generation import generated_batches
from meddtfm.evaluation.metrics import PairedMetrics
from meddtfm.evaluation.runner import Evaluation, Setup, average_key


def _loader() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand((4, 1, 16, 16), generator=g) * 2 - 1
    mask = torch.zeros((4, 1, 16, 16))
    mask[:2, :, 4:8, 4:8] = 1
    return [{"image": image, "mask": mask, "has_mask": torch.tensor([True, True, False, False]),
             "sample_id": ["a", "b", "c", "d"]}]


def _noisy(batch: dict, seed: int) -> torch.Tensor:
    noise = torch.randn(batch["image"].shape, generator=torch.Generator().manual_seed(seed))
    return (batch["image"] + 0.3 * noise).clamp(-1, 1)


def test_noise_mode_pairs_only_images_whose_own_mask_conditioned_them(tmp_path):
    (batch,) = generated_batches(_loader(), _noisy, seed=0, mode="noise")
    assert batch["has_target"].tolist() == [True, True, False, False]
    evaluation = Evaluation(Setup(("paired",), ("c0",), ("lesion",), tmp_path))
    out = evaluation.run(generated_batches(_loader(), _noisy, 0, "noise"), "x")
    assert out["paired/pairs"] == 2
    expected = PairedMetrics(("c0",), 16)
    expected.update(batch["fake"][:2], _loader()[0]["image"][:2])
    assert out["ssim/mean"] == pytest.approx(expected.compute()["ssim/mean"])


def test_average_of_k_draws_is_scored_beside_the_single_draw(tmp_path):
    (batch,) = generated_batches(_loader(), _noisy, seed=3, mode="noise", average_of=4)
    draws = [_noisy(_loader()[0], 3 + k * 1_000_003) for k in range(4)]
    assert torch.equal(batch["fake"], draws[0]) and torch.allclose(batch["fake_average"], torch.stack(draws).mean(0))
    evaluation = Evaluation(Setup(("paired",), ("c0",), ("lesion",), tmp_path))
    out = evaluation.run(generated_batches(_loader(), _noisy, 3, "noise", average_of=4), "x")
    assert out[average_key("psnr/mean", 4)] > out["psnr/mean"], "averaging independent noise moves toward the target"
    (fixed,) = generated_batches(_loader(), _noisy, seed=3, mode="noise", average_of=4, deterministic=True)
    assert torch.equal(fixed["fake_average"], fixed["fake"])


def test_reference_mode_pairs_every_image_with_its_reference():
    loader = [{**_loader()[0], "reference": torch.zeros((4, 1, 16, 16))}]
    (batch,) = generated_batches(loader, _noisy, seed=0, mode="reference")
    assert batch["has_target"].all() and torch.equal(batch["target"], loader[0]["reference"])


def test_every_trainable_generator_has_a_loader(tmp_path):
    from meddtfm.checkpoint import CheckpointError, save_weights
    from meddtfm.evaluation.generation import LOADERS, load_generate
    from meddtfm.training.tasks import GENERATORS

    assert LOADERS.names() == GENERATORS.names()
    path = save_weights({"w": torch.zeros(1)}, tmp_path / "x.safetensors", {"model": "cyclegan"})
    with pytest.raises(CheckpointError, match="holds model 'cyclegan'.*pix2pixhd, medgan, meddtfm"):
        load_generate(path, "noise", torch.device("cpu"))
