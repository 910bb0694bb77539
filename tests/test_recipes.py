"""``config.recipes``: every named recipe is a valid, distinct change of the paper's form, applied between the
config file and ``--set``."""
import pytest

from meddtfm.config import RECIPES, ConfigError, load_config, to_dict


@pytest.mark.parametrize("name", [n for n in RECIPES if n != "paper"])
def test_every_recipe_changes_the_papers_form(name):
    assert to_dict(load_config(recipe=name)) != to_dict(load_config(recipe="paper"))


def test_the_paper_recipe_is_the_default():
    assert to_dict(load_config(recipe="paper")) == to_dict(load_config())


def test_no_recipe_sets_the_data_or_the_budget():
    keys = {o.split("=")[0] for n in RECIPES for o in RECIPES[n]}
    assert keys and not {k for k in keys if k.startswith("data.") or k in ("train.steps", "train.max_minutes")}


def test_a_recipe_sits_between_the_config_file_and_the_overrides():
    cfg = load_config("quickstart", ["flow.dt_kind=l2"], recipe="bottleneck_cos")
    assert cfg.flow.dt_weights == [0.5, 0.0, 0.0, 0.0] and cfg.flow.dt_kind == "l2"
    assert cfg.flow.adv_weight == load_config("quickstart").flow.adv_weight == 0.0, "the file's other keys stay"


def test_an_unknown_recipe_lists_the_recipes():
    with pytest.raises(ConfigError, match="unknown recipe 'nosuch'; choose from paper, nodt, bottleneck_cos"):
        load_config(recipe="nosuch")
