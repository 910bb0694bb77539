"""Typed configuration: dataclasses loaded from YAML, overridden with ``key.path=value`` strings.

Every subcommand takes ``--config FILE`` (or the name of a config shipped with the package, see
``shipped``) and repeatable ``--set key.path=value``; the merge and the type checks are OmegaConf's
structured configs, so a misspelt key or a wrong type is an error that names the key, not a silent default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .baselines import GANConfig, MedGANConfig, Pix2PixHDConfig
from .datasets import DATASETS
from .errors import ConfigError, check_choice
from .few_step import FEW_STEP_METHODS, FewStepConfig
from .recipes import RECIPES, find_recipe
from .shipped import config_names, find_config

__all__ = ["FEW_STEP_METHODS", "RECIPES", "Config", "ConfigError", "DataConfig", "EncoderConfig", "FewStepConfig",
           "FlowConfig", "GANConfig", "GeneratorConfig", "MedGANConfig", "Pix2PixHDConfig", "TrainConfig",
           "config_names", "find_config", "load_config", "save_config", "to_dict"]

SLICE_SELECTIONS = ("tumour", "healthy", "brain", "all")
BAD_SAMPLE_POLICIES = ("error", "skip")
REFERENCE_SOURCES = ("other_slice", "same_lesion", "none")


@dataclass
class DataConfig:
    """Which dataset to read and how to turn it into ``C x S x S`` images and ``K x S x S`` masks."""

    name: str = "phantoms"
    root: str | None = None
    resolution: int = 64
    modalities: list[str] = field(default_factory=list)  # empty: every sequence the dataset defines
    slices: str = "tumour"  # BraTS / LGG slice selection: tumour | healthy | brain | all
    whole_tumour: bool = False  # BraTS: add a whole-tumour channel after NCR, ED, ET
    min_brain_fraction: float = 0.05  # a slice "has brain" when this fraction of it is brain
    intensity_percentiles: list[float] = field(default_factory=lambda: [0.5, 99.5])
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    # Shuffles subjects into splits; not the run seed, so every model of a study shares one test set.
    split_seed: int = 0
    augment: bool = True
    on_bad_sample: str = "error"  # error | skip
    volume_cache: int = 8  # BraTS: decoded volumes kept per worker
    slice_cache: bool = True  # BraTS: decode each case once into .npy files under $MEDDTFM_CACHE (up to 80 MB a case)
    phantom_kind: str = "mri"  # phantoms: mri | dermoscopy
    phantom_count: int = 512  # phantoms: subjects in the whole (train + val + test) set
    phantom_seed: int = 0  # phantoms: the pixels depend on this, not on the run seed
    # The training split only: keep this fraction of its subjects (low-data studies; 0: none, with extra_train),
    # and add the images of these folders in the `folder` layout (synthetic data from `meddtfm augment`).
    train_fraction: float = 1.0
    extra_train: list[str] = field(default_factory=list)
    batch_size: int = 16
    num_workers: int = 2  # DataLoader workers per process, capped at the usable CPUs

    def __post_init__(self) -> None:
        check_choice("data.name", self.name, DATASETS.names())
        check_choice("data.slices", self.slices, SLICE_SELECTIONS)
        check_choice("data.on_bad_sample", self.on_bad_sample, BAD_SAMPLE_POLICIES)
        check_choice("data.phantom_kind", self.phantom_kind, ("mri", "dermoscopy"))
        if self.resolution < 8:
            raise ConfigError(f"data.resolution={self.resolution} is too small (minimum 8)")
        if not (0.0 <= self.val_fraction < 1.0 and 0.0 <= self.test_fraction < 1.0):
            raise ConfigError("data.val_fraction and data.test_fraction must lie in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("data.val_fraction + data.test_fraction must leave subjects for training")
        if not 0.0 <= self.train_fraction <= 1.0 or (self.train_fraction == 0.0 and not self.extra_train):
            raise ConfigError(f"data.train_fraction={self.train_fraction} must lie in (0, 1], or be 0 with "
                              "data.extra_train folders to train on")
        lo, hi = self.intensity_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ConfigError(f"data.intensity_percentiles={self.intensity_percentiles} must be 0 <= lo < hi <= 100")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping shared by every training command (``data.batch_size`` is per device)."""

    steps: int = 20000
    max_minutes: float = 0.0  # wall-clock budget per run (equal-budget comparisons); 0: none
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])  # the paper's Adam
    weight_decay: float = 0.0
    warmup_steps: int = 500
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    grad_accumulation: int = 1
    ema_decay: float = 0.999  # reached after a warm-up: min(ema_decay, (1 + n) / (10 + n)) at update n
    # > 0: replaces ema_decay by 0.5 ** (images per update / this), the EMA's half-life in images seen (EDM)
    ema_halflife_images: int = 0
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    compile: bool = False
    # Bit-reproducible GPU runs: deterministic kernels only (slower; warns where none exists).
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50
    val_every: int = 0  # steps between validations; 0: once per epoch
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        if self.steps < 1 or self.grad_accumulation < 1:
            raise ConfigError("train.steps and train.grad_accumulation must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay={self.ema_decay} must lie in [0, 1)")
        if self.ema_halflife_images < 0:
            raise ConfigError(f"train.ema_halflife_images={self.ema_halflife_images} must be >= 0 (0: use ema_decay)")
        if len(self.betas) != 2:
            raise ConfigError(f"train.betas={self.betas} must be two numbers")


@dataclass
class EncoderConfig:
    """The segmentation networks: U-KAN (the distillation teacher) or MONAI U-Net (the evaluation segmenter)."""

    model: str = "ukan"  # ukan | unet
    widths: list[int] = field(default_factory=lambda: [32, 64, 256, 320, 512])  # U-KAN: 3 conv + 2 token stages
    unet_features: list[int] = field(default_factory=lambda: [32, 32, 64, 128, 256, 32])  # MONAI BasicUNet
    kan_grid_size: int = 5
    kan_spline_order: int = 3
    drop_path: float = 0.1
    kan_lr_scale: float = 1.0  # U-KAN: learning rate of the KANLinear layers / train.lr (the U-KAN reference: 100)
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    checkpoint: str | None = None  # a pretrained teacher (pretrain-encoder's best.safetensors)

    def __post_init__(self) -> None:
        check_choice("encoder.model", self.model, ("ukan", "unet"))


@dataclass
class GeneratorConfig:
    """Widths and switches of ``VelocityNet`` (defaults sized for 64-128 px).

    ``channel_mult`` lists the encoder's width multipliers from fine to coarse (full size first, as
    in guided-diffusion); the decoder levels, coarse to fine, use them reversed. Its length is the
    number of levels L. ``cond_channels`` gives ``C_i``'s channels per level, coarse to fine.
    ``vocab_size = 0`` builds no caption path. ``text_dim`` is the text transformer's width and D.
    """

    base_channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    attention_at_bottleneck: bool = True
    attention_head_dim: int = 32
    bridge_mode: str = "spade"  # spade | concat
    cond_channels: list[int] = field(default_factory=lambda: [64, 64, 32, 32])
    text_dim: int = 128
    text_layers: int = 2
    text_heads: int = 4
    max_caption_len: int = 32
    vocab_size: int = 1024
    time_dim: int = 128
    dropout: float = 0.1
    norm_groups: int = 32
    # A second time input, the duration h of MeanFlow's average velocity u(x_t, t, h) (distill-steps
    # --method meanflow); its embedding starts at zero, so the network starts as the flow v(x_t, t).
    duration_embedding: bool = False

    def __post_init__(self) -> None:
        check_choice("generator.bridge_mode", self.bridge_mode, ("spade", "concat"))
        if len(self.cond_channels) != len(self.channel_mult) or len(self.channel_mult) < 2:
            raise ConfigError(f"need >= 2 levels and one cond_channels entry per level, got "
                             f"channel_mult={list(self.channel_mult)}, cond_channels={list(self.cond_channels)}")
        if min(self.base_channels, self.num_res_blocks, self.time_dim, self.text_dim, *self.channel_mult) < 1:
            raise ConfigError("base_channels, num_res_blocks, time_dim, text_dim, channel_mult must be >= 1")


@dataclass
class FlowConfig:
    """The Med-DT-FM objective: ``L_FM + L_DT + alpha L_adv`` (docs/design.md) and its conditioning."""

    time_sampling: str = "logit_normal"  # uniform | logit_normal
    coupling: str = "independent"  # independent | ot (exact minibatch EMD)
    cond_dropout: float = 0.1  # mask and caption are each replaced by their null with this probability (CFG)
    class_ablation: float = 0.0  # probability that one lesion class is removed from the mask (and image kept)
    ref_dropout: float = 0.5  # probability of training without the reference features f_ref
    reference: bool = True  # build the reference path of Eq. 6 (needs the teacher)
    # Where a training sample's reference image comes from, never the sample itself (meddtfm.data.references):
    # other_slice: another slice of the same subject, healthy preferred (BraTS, LGG, MRI phantoms);
    # same_lesion: another image of the same lesion_id (ISIC); none: no reference, no reference path.
    reference_source: str = "other_slice"
    dt_weights: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5, 0.5])  # lambda_0..3; all 0: "no DT"
    dt_kind: str = "l2"  # l2 | cosine
    dt_stop_step: int = 0  # > 0: L_DT off from this step on
    dt_normalize: str = "none"  # none | spatial: z-score each target channel over its positions (iREPA)
    projector: str = "conv"  # conv | mlp
    adv_weight: float = 0.05  # alpha; 0 disables the discriminator
    adv_start_step: int = 2000
    adv_kind: str = "hinge"  # hinge | lsgan
    adv_min_t: float = 0.0  # L_adv (both players) only on rows with t >= this
    adv_weighting: str = "none"  # none | t: the generator's L_adv of each row weighted by its t
    r1_gamma: float = 0.0  # > 0: R1 penalty (gamma / 2) E||grad_x D(x_real)||^2 in the discriminator's loss
    x1_loss: str = "none"  # none | l1 | pseudo_huber: image loss on the one-step estimate x1_hat vs x1
    x1_loss_weight: float = 1.0
    x1_loss_min_t: float = 0.5  # x1_loss only on rows with t >= this
    ema: bool = True  # sample, validate and export the EMA generator (train.ema_*); false: the raw generator
    disc_channels: int = 64
    disc_layers: int = 3
    disc_scales: int = 2
    sample_steps: int = 16  # Heun steps for the snapshots drawn during training
    val_batches: int = 8  # validation L_FM averaged over this many fixed-noise batches

    def __post_init__(self) -> None:
        check_choice("flow.time_sampling", self.time_sampling, ("uniform", "logit_normal"))
        check_choice("flow.coupling", self.coupling, ("independent", "ot"))
        check_choice("flow.dt_kind", self.dt_kind, ("l2", "cosine"))
        check_choice("flow.projector", self.projector, ("conv", "mlp"))
        check_choice("flow.adv_kind", self.adv_kind, ("hinge", "lsgan"))
        check_choice("flow.reference_source", self.reference_source, REFERENCE_SOURCES)
        check_choice("flow.dt_normalize", self.dt_normalize, ("none", "spatial"))
        check_choice("flow.adv_weighting", self.adv_weighting, ("none", "t"))
        check_choice("flow.x1_loss", self.x1_loss, ("none", "l1", "pseudo_huber"))
        if len(self.dt_weights) != 4 or min(self.dt_weights) < 0:
            raise ConfigError(f"flow.dt_weights={self.dt_weights} must be 4 non-negative weights (levels 0..3)")
        for name in ("cond_dropout", "class_ablation", "ref_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"flow.{name} must lie in [0, 1]")
        for name in ("adv_min_t", "x1_loss_min_t"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"flow.{name}={getattr(self, name)} must lie in [0, 1): t is drawn from (0, 1)")
        if self.r1_gamma < 0 or self.x1_loss_weight < 0:
            raise ConfigError(f"flow.r1_gamma={self.r1_gamma} and flow.x1_loss_weight={self.x1_loss_weight} "
                              "must be >= 0")

    @property
    def distills(self) -> bool:
        return any(w > 0 for w in self.dt_weights)

    @property
    def uses_reference(self) -> bool:
        """Whether the generator has the reference path of Eq. 6 (and so needs the teacher)."""
        return self.reference and self.reference_source != "none"


@dataclass
class Config:
    """The whole run: one seed, one dataset, and the sections the subcommands add."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    few_step: FewStepConfig = field(default_factory=FewStepConfig)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), seed: int | None = None,
                recipe: str | None = None) -> Config:
    """Defaults <- YAML file <- ``recipe`` <- ``key.path=value`` overrides <- ``seed``; a validated ``Config``.

    ``path`` is a YAML file or the name of a shipped config (``lgg``: ``meddtfm/configs/lgg.yaml``);
    ``recipe`` names a training recipe of ``RECIPES`` (``paper``, ``nodt``, ``bottleneck_cos``, ...).
    """
    merged = OmegaConf.structured(Config)
    if recipe is not None:
        overrides = [*find_recipe(recipe).value, *overrides]
    try:
        if path is not None:
            path = find_config(path)
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not of the form key.path=value")
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        if seed is not None:
            merged.seed = seed
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"invalid configuration{where}: {err}") from err


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config dataclass (for YAML dumps and checkpoints)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML next to a run's outputs."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
