"""Shared fixtures: where the real data lives, and tiny configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The suite's models are tiny and overhead-bound: one intra-op thread avoids OpenMP spin-waits on
# a 2-core machine (measured: a tiny U-KAN forward took up to 2.5 s with 2 threads under load, 10 ms with 1).
# OMP_NUM_THREADS also reaches subprocesses and keeps the training loop's own choice (cpu_threads) at 1.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# The two of the 12 four-sequence BraTS cases that the default suite reads; the others only in tests marked slow.
BRATS_4SEQ_CI_CASES = ("BraTS2021_91001", "BraTS2021_91002")


def shared_dataset(name: str) -> Path:
    """Path of a set under ``../shared/data``, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent (it ships beside the repository as ../shared/data)")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (the whole shared BraTS set)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``slow`` tests unless asked for with ``--slow`` or a ``-m`` expression that selects them."""
    expression = config.getoption("-m") or ""
    if config.getoption("--slow") or ("slow" in expression and "not slow" not in expression):
        return
    skip = pytest.mark.skip(reason="slow test on the full shared data: run with --slow or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def brats_4seq_two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BraTS root holding ``BRATS_4SEQ_CI_CASES`` of ``../shared/data/brats2021-4seq`` as symbolic links (nothing
    copied); skips when the shared data is absent."""
    source = shared_dataset("brats2021-4seq")
    root = tmp_path_factory.mktemp("brats-4seq-two")
    for case in BRATS_4SEQ_CI_CASES:
        (root / case).symlink_to(source / case, target_is_directory=True)
    return root


@pytest.fixture
def shared_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$MEDDTFM_CACHE`` shared by the whole session: each real case is decoded once, whichever test reads it."""
    folder = tmp_path_factory.getbasetemp() / "shared-slice-cache"
    monkeypatch.setenv("MEDDTFM_CACHE", str(folder))
    return folder


TINY_DATA = ["data.phantom_count=24", "data.val_fraction=0.2", "data.resolution=32", "data.batch_size=4",
             "data.num_workers=0", "data.modalities=[flair]", "train.warmup_steps=1", "train.val_every=100",
             "train.checkpoint_every=100", "train.sample_every=100"]
TINY_GENERATOR = ["generator.base_channels=8", "generator.cond_channels=[8,8,8,8]", "generator.text_dim=16",
                  "generator.time_dim=16", "generator.num_res_blocks=1", "generator.attention_at_bottleneck=false",
                  "generator.dropout=0.0", "flow.adv_weight=0", "flow.val_batches=1", "train.steps=3"]


def _cli(*args: str) -> None:
    from click.testing import CliRunner

    from meddtfm.cli.main import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


def _sets(*groups: list[str]) -> list[str]:
    return [a for group in groups for o in group for a in ("--set", o)]


@pytest.fixture(scope="session")
def tiny_flow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step Med-DT-FM run on FLAIR-only MRI phantoms (1 channel, classes NCR / ED / ET, 32 px) with a 2-step
    U-KAN teacher, trained in seconds: the run folder (``final.safetensors``, ``metrics.csv``, ...)."""
    root = tmp_path_factory.mktemp("tiny-flow")
    _cli("pretrain-encoder", *_sets(TINY_DATA, ["encoder.widths=[4,8,16,24,32]", "train.steps=2"]),
         "--out", str(root / "teacher"))
    _cli("train", *_sets(TINY_DATA, TINY_GENERATOR, [f"encoder.checkpoint={root / 'teacher' / 'best.safetensors'}"]),
         "--out", str(root / "run"))
    return root / "run"


@pytest.fixture(scope="session")
def tiny_caption_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step caption model on RGB dermoscopy phantoms (class ``lesion``, 32 px), no teacher: its run folder."""
    root = tmp_path_factory.mktemp("tiny-caption")
    data = [o for o in TINY_DATA if not o.startswith("data.modalities")] + ["data.phantom_kind=dermoscopy"]
    _cli("train", *_sets(data, TINY_GENERATOR, ["flow.dt_weights=[0,0,0,0]", "flow.reference=false"]),
         "--out", str(root / "run"))
    return root / "run"
