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
