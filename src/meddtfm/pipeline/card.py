"""``model_card.md`` of a saved pipeline: the model, the data it was trained on, its budget and measured metrics.

Facts come from the weights' config and, when the weights sit in a ``meddtfm train`` run folder, from its
``train_result.json`` (steps, seconds), ``config.yaml`` (planned steps, batch) and ``metrics.csv`` (the last
validation value of each metric). A saved pipeline keeps them in its ``config.json``, so saving it again keeps them.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from omegaconf import OmegaConf

NAMES = {"meddtfm": "Med-DT-FM", "pix2pixhd": "pix2pixHD", "medgan": "MedGAN"}
DATA_KEYS = ("name", "phantom_kind", "root", "resolution", "slices", "split_seed", "val_fraction", "test_fraction")


def _last_validation(path: Path) -> dict[str, float]:
    """Last value of each ``val`` metric of a run's ``metrics.csv`` (``step,split,name,value``)."""
    last: dict[str, tuple[int, float]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("split") == "val" and int(row["step"]) >= last.get(row["name"], (-1, 0.0))[0]:
                last[row["name"]] = (int(row["step"]), float(row["value"]))
    return {name: value for name, (_, value) in sorted(last.items())}


def card_facts(weights: Path, meta: dict) -> dict:
    """What the card says about the weights in ``weights`` (config ``meta``) and their run folder, if any."""
    run = weights.parent
    data = meta.get("data") or {}
    facts: dict = {"model": meta.get("model"), "source": str(weights), "step": meta.get("step"),
                   "data": {k: data[k] for k in DATA_KEYS if data.get(k) not in (None, "")},
                   "channels": meta.get("channel_names"), "classes": meta.get("class_names"),
                   "captions": bool(meta.get("tokenizer")), "budget": {}, "metrics": {}}
    if (run / "train_result.json").is_file():
        result = json.loads((run / "train_result.json").read_text())
        facts["budget"].update(steps_trained=result.get("step"), training_seconds=round(result.get("seconds", 0), 1))
    if (run / "config.yaml").is_file():
        train = OmegaConf.load(run / "config.yaml")
        facts["budget"].update(steps_planned=OmegaConf.select(train, "train.steps"),
                               batch_size=OmegaConf.select(train, "data.batch_size"),
                               grad_accumulation=OmegaConf.select(train, "train.grad_accumulation"),
                               max_minutes=OmegaConf.select(train, "train.max_minutes") or None)
    if (run / "metrics.csv").is_file():
        facts["metrics"] = _last_validation(run / "metrics.csv")
    return facts


def _table(values: dict) -> list[str]:
    return ["| key | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in values.items() if v is not None]


def model_card(facts: dict, files: dict[str, str | None]) -> str:
    """The Markdown of ``model_card.md`` from ``card_facts`` and the folder's ``files`` (role -> name)."""
    lines = [f"# {NAMES.get(facts['model'], facts['model'])} pipeline (meddtfm)", "",
             f"Saved from `{facts['source']}` (training step {facts.get('step')}).", "",
             f"Images: {', '.join(facts.get('channels') or [])} at {facts['data'].get('resolution')} px; "
             f"mask classes: {', '.join(facts.get('classes') or [])}; "
             f"captions: {'yes' if facts['captions'] else 'no'}.",
             "", "## Files", ""]
    lines += [f"- `{name}`: {role}" for role, name in files.items() if name]
    lines += ["", "## Data", ""] + _table(facts["data"])
    lines += ["", "## Budget", ""] + (_table(facts["budget"]) if facts["budget"] else ["Not recorded."])
    lines += ["", "## Measured metrics", ""]
    if facts["metrics"]:
        lines += ["Last validation values of the training run (`metrics.csv`):", ""] + _table(facts["metrics"])
    else:
        lines += ["None recorded with these weights; score them with `meddtfm evaluate`."]
    lines += ["", "## Use", "", "```python", "from meddtfm import MedDTFMPipeline",
              'pipe = MedDTFMPipeline.from_pretrained("THIS_FOLDER")',
              "out = pipe(masks=mask, nfe=8, cfg=2.0, seed=0)  # mask: K x H x W one-hot, H x W label map or a file",
              "out.to_pil()[0].save(\"sample.png\")", "```", ""]
    return "\n".join(lines)
