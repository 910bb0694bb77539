"""``GENERATORS``: every ``meddtfm train --model`` with its task; ``BASELINES``: each baseline's objective."""
import pytest
import torch

from meddtfm.config import GANConfig, load_config
from meddtfm.data import build_dataset
from meddtfm.models.discriminator import MultiScalePatchGAN
from meddtfm.training.distributed import DistEnv
from meddtfm.training.flow_matching import MedDTFMTask
from meddtfm.training.gan import BASELINES, GANTask, baseline_objective
from meddtfm.training.tasks import GENERATORS

DATA = ["data.phantom_count=24", "data.resolution=32", "data.batch_size=4", "data.num_workers=0", "gan.ndf=8",
        "gan.n_layers_d=2", "gan.pix2pixhd.ngf=8", "gan.pix2pixhd.n_downsample_global=2",
        "gan.pix2pixhd.n_blocks_global=1", "gan.medgan.num_blocks=2", "gan.medgan.depth=3", "gan.medgan.ngf=8"]


def test_every_generator_and_baseline_has_a_name_and_a_description():
    assert GENERATORS.names() == ("pix2pixhd", "medgan", "meddtfm")
    assert set(BASELINES) < set(GENERATORS) and all(GENERATORS.entry(n).description for n in GENERATORS)


def test_each_kind_builds_its_task():
    cfg = load_config(None, DATA + ["flow.dt_weights=[0,0,0,0]", "flow.reference=false"])
    data, env = build_dataset(cfg.data, "train", cfg.seed), DistEnv(0, 1, torch.device("cpu"))
    assert isinstance(GENERATORS["meddtfm"].build(cfg, data, env, None), MedDTFMTask)
    assert not GENERATORS["meddtfm"].uses_teacher(cfg) and GENERATORS["meddtfm"].uses_teacher(load_config(None, []))
    for name in BASELINES:
        kind = GENERATORS[name]
        task = kind.build(cfg, data, env, None)
        assert isinstance(task, GANTask) and task.model == name
        assert kind.deterministic and not kind.uses_teacher(load_config(None, [])) and kind.val_metric == "L1"


@pytest.mark.parametrize("name, terms", [("pix2pixhd", ["loss/adv_g", "loss/feat"]),
                                         ("medgan", ["loss/adv_g", "loss/perceptual", "loss/style", "loss/l1"])])
def test_objectives_share_one_signature(name, terms):
    gan = load_config(None, DATA).gan
    baseline = BASELINES[name]
    objective = baseline_objective(name, gan, torch.device("cpu"))
    disc = MultiScalePatchGAN(4, 3, gan.ndf, gan.n_layers_d, baseline.scales(gan))
    g = torch.Generator().manual_seed(0)
    real = torch.rand((2, 4, 32, 32), generator=g) * 2 - 1
    mask = (torch.rand((2, 3, 32, 32), generator=g) > 0.5).float()
    fake = torch.zeros_like(real, requires_grad=True)
    loss, logged = objective(disc, real, fake, mask)
    assert list(logged) == terms and loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert fake.grad.abs().sum() > 0


def test_unknown_baseline_lists_the_choices():
    with pytest.raises(ValueError, match="unknown GAN baseline 'cyclegan'; choose from pix2pixhd, medgan"):
        BASELINES["cyclegan"].generator(GANConfig(), 4, 3, None)


def test_a_baseline_objective_is_the_weighted_sum_of_its_declared_terms():
    gan = load_config(None, DATA).gan
    objective = baseline_objective("pix2pixhd", gan, torch.device("cpu"))
    disc = MultiScalePatchGAN(4, 3, gan.ndf, gan.n_layers_d, BASELINES["pix2pixhd"].scales(gan))
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand((2, 4, 32, 32), generator=g), torch.rand((2, 4, 32, 32), generator=g)
    mask = (torch.rand((2, 3, 32, 32), generator=g) > 0.5).float()
    loss, logged = objective(disc, real, fake, mask)
    expected = 2 * gan.pix2pixhd.num_d * logged["loss/adv_g"] + gan.pix2pixhd.feat_weight * logged["loss/feat"]
    assert loss.item() == pytest.approx(expected, rel=1e-6)
