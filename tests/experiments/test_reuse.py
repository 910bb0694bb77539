"""``experiments.reuse``: a kept score is read back only for the key it was written for."""
import json
import os

from meddtfm.experiments.reuse import cached, stamp


def test_a_document_is_reused_only_for_its_own_key(tmp_path):
    weights = tmp_path / "final.safetensors"
    weights.write_bytes(b"1")
    key = {"weights": stamp(weights), "sampler": (4, "heun")}
    doc = {"runs": {"seed0": {"frd": 1.5}}, "settings": {"key": key}}
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    assert cached(tmp_path / "metrics.json", key) == json.loads(json.dumps(doc)), "tuples compare as JSON lists"
    assert cached(tmp_path / "metrics.json", {**key, "sampler": (8, "heun")}) is None
    assert cached(tmp_path / "absent.json", key) is None
    os.utime(weights, ns=(1, 1))
    assert cached(tmp_path / "metrics.json", {**key, "weights": stamp(weights)}) is None, "rewritten weights"
    assert stamp(None) is None
