"""Named training recipes of Med-DT-FM: the paper's form and one-switch changes of it, as ``--set`` overrides.

A recipe sets only the switches that define it (``FlowConfig``, ``TrainConfig``), never a step count or a
size, so it means the same at every budget. ``meddtfm train --recipe NAME`` applies one between the config
file and ``--set``; an ablation preset names its variants from this list (a variant entry that is a bare
name is the recipe of that name); ``benchmarks.recipes`` times them. Recipes tied to the budget (switching
``L_DT`` off half-way, an EMA half-life in images) are declared by the presets that fix the budget.

>>> from meddtfm.config import load_config
>>> load_config(recipe="bottleneck_cos").flow.dt_weights
[0.5, 0.0, 0.0, 0.0]
"""
from __future__ import annotations

from ..registry import Entry, Registry, UnknownNameError
from .errors import ConfigError

RECIPES: Registry[tuple[str, ...]] = Registry("recipe")

RECIPES.add("paper", "the paper's form: L2 distillation at 4 scales (lambda_i = 0.5), reference path, L_adv", ())
RECIPES.add("nodt", "no teacher at all (no L_DT, no reference path), Table 1's Ours (no DT)",
            ("flow.dt_weights=[0,0,0,0]", "flow.reference=false"))
RECIPES.add("bottleneck_cos", "L_DT at the bottleneck (level 0) only, 1 - cosine",
            ("flow.dt_weights=[0.5,0,0,0]", "flow.dt_kind=cosine"))
RECIPES.add("cosine", "L_DT at the 4 scales with 1 - cosine instead of L2 (the loss of bottleneck_cos, the sites of "
            "paper)", ("flow.dt_kind=cosine",))
RECIPES.add("bottleneck_l2", "L_DT at the bottleneck (level 0) only, L2 (the site of bottleneck_cos, the loss of "
            "paper)", ("flow.dt_weights=[0.5,0,0,0]",))
RECIPES.add("middle_cos", "L_DT at level 1 only, 1 - cosine", ("flow.dt_weights=[0,0.5,0,0]", "flow.dt_kind=cosine"))
RECIPES.add("no_ref", "L_DT without the reference path of Eq. 6", ("flow.reference=false",))
RECIPES.add("no_adv", "no adversarial loss (alpha = 0)", ("flow.adv_weight=0",))
RECIPES.add("dt_spatial", "iREPA: L_DT's teacher targets normalised over space (per channel: minus mean, over std)",
            ("flow.dt_normalize=spatial",))
RECIPES.add("adv_late", "L_adv only on rows with t >= 0.5 (near t = 0 the one-step estimate is a blurry mean)",
            ("flow.adv_min_t=0.5",))
RECIPES.add("adv_t", "each row's L_adv weighted by its t", ("flow.adv_weighting=t",))
RECIPES.add("adv_early", "L_adv from the first step instead of from flow.adv_start_step (the GAN baselines have it "
            "throughout)", ("flow.adv_start_step=0",))
RECIPES.add("r1", "R1 penalty on the discriminator's real inputs, gamma 0.1", ("flow.r1_gamma=0.1",))
RECIPES.add("x1_huber", "pseudo-Huber loss on the one-step estimate x1_hat for t >= 0.5 (weight 1)",
            ("flow.x1_loss=pseudo_huber",))
RECIPES.add("raw", "sample, validate and export the raw generator instead of its EMA", ("flow.ema=false",))


def find_recipe(name: str) -> Entry[tuple[str, ...]]:
    """Recipe ``name`` (its ``description`` and, as ``value``, its ``key.path=value`` overrides); ``ConfigError``
    lists the recipes if it is unknown."""
    try:
        return RECIPES.entry(name)
    except UnknownNameError as err:
        raise ConfigError(str(err)) from None
