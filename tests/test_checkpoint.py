import pytest
import torch

from meddtfm.checkpoint import CheckpointError, list_states, load_state, load_weights, rebuild, save_state, save_weights


def test_state_round_trip_and_rotation(tmp_path):
    for step in (1, 2, 3, 4):
        state = {"step": step, "w": torch.full((2,), float(step)), "rng": torch.get_rng_state()}
        save_state(state, tmp_path, step, keep=2)
    states = list_states(tmp_path)
    assert [p.name for p in states] == ["step_0000003.pt", "step_0000004.pt"]
    state = load_state(states[-1])
    assert state["step"] == 4 and torch.equal(state["w"], torch.full((2,), 4.0))
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files left behind"


def test_truncated_state_is_a_clear_error(tmp_path):
    path = save_state({"w": torch.zeros(1000)}, tmp_path, 5)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="step_0000005.pt"):
        load_state(path)


def test_state_with_code_is_refused(tmp_path):
    path = tmp_path / "step_0000001.pt"
    torch.save({"f": print}, path)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state(path)


def test_weights_keep_config(tmp_path):
    net = torch.nn.Linear(3, 2)
    path = save_weights(net.state_dict(), tmp_path / "w.safetensors", {"model": "ukan", "widths": [1, 2]})
    state, config = load_weights(path)
    assert config == {"model": "ukan", "widths": [1, 2]}
    assert torch.equal(state["weight"], net.weight.detach())
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")


def test_rebuild_names_the_file_on_every_failure(tmp_path):
    net = torch.nn.Linear(3, 2)
    path = save_weights(net.state_dict(), tmp_path / "w.safetensors", {"in": 3, "out": 2})
    again, config = rebuild(path, lambda meta: torch.nn.Linear(meta["in"], meta["out"]), "layer")
    assert config == {"in": 3, "out": 2} and not again.training and torch.equal(again.weight, net.weight)
    with pytest.raises(CheckpointError, match="w.safetensors: metadata does not describe a meddtfm layer"):
        rebuild(path, lambda meta: torch.nn.Linear(meta["width"], 2), "layer")
    with pytest.raises(CheckpointError, match="w.safetensors: weights do not fit the layer"):
        rebuild(path, lambda meta: torch.nn.Linear(4, 2), "layer")
    with pytest.raises(CheckpointError, match="does not exist"):
        rebuild(tmp_path / "missing.safetensors", lambda meta: net)
