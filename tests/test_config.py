from pathlib import Path

import pytest

from meddtfm.config import ConfigError, config_names, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("preset", ["phantoms", "brats2021", "isic2019", "lgg"])
def test_presets_load(preset):
    cfg = load_config(CONFIGS / f"{preset}.yaml")
    assert cfg.data.name == ("phantoms" if preset == "phantoms" else preset)


def test_overrides_are_typed():
    cfg = load_config(None, ["data.root=/data/isic", "data.resolution=128", "data.modalities=[flair,t1ce]"], seed=7)
    assert cfg.data.root == "/data/isic" and cfg.data.resolution == 128
    assert cfg.data.modalities == ["flair", "t1ce"] and cfg.seed == 7


@pytest.mark.parametrize("override, words", [
    ("data.resolutio=3", "resolutio"),
    ("data.resolution=abc", "resolution"),
    ("data.name=mnist", "data.name"),
    ("data.on_bad_sample=ignore", "on_bad_sample"),
    ("data.val_fraction=1.5", "val_fraction"),
    ("data.resolution", "key.path=value"),
    ("flow.dt_normalize=layer", "flow.dt_normalize"),
    ("flow.adv_weighting=sigma", "flow.adv_weighting"),
    ("flow.x1_loss=l2", "flow.x1_loss"),
    ("flow.adv_min_t=1.0", "flow.adv_min_t"),
    ("flow.x1_loss_min_t=-0.1", "flow.x1_loss_min_t"),
    ("flow.r1_gamma=-1", "flow.r1_gamma"),
    ("flow.x1_loss_weight=-1", "flow.x1_loss_weight"),
    ("train.ema_halflife_images=-5", "train.ema_halflife_images"),
])
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, [override])


def test_shipped_configs_load_by_name():
    assert config_names() == sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert load_config("lgg") == load_config(CONFIGS / "lgg.yaml")
    with pytest.raises(ConfigError, match="shipped configs, by name: brats2021"):
        load_config("nosuch")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_round_trip(tmp_path):
    cfg = load_config(None, ["data.resolution=32", "seed=3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_the_training_recipe_switches_default_to_off():
    cfg = load_config(None)
    fc = cfg.flow
    assert (fc.dt_normalize, fc.adv_min_t, fc.adv_weighting, fc.r1_gamma) == ("none", 0.0, "none", 0.0)
    assert (fc.x1_loss, fc.x1_loss_weight, fc.x1_loss_min_t, fc.ema) == ("none", 1.0, 0.5, True)
    assert cfg.train.ema_halflife_images == 0
    on = load_config(None, ["flow.dt_normalize=spatial", "flow.adv_min_t=0.3", "flow.adv_weighting=t",
                            "flow.r1_gamma=0.1", "flow.x1_loss=pseudo_huber", "flow.ema=false",
                            "train.ema_halflife_images=5000"])
    assert on.flow.x1_loss == "pseudo_huber" and on.train.ema_halflife_images == 5000 and not on.flow.ema
