"""``Table1.prepare``: the evaluation U-Net is trained when any metric needs it, brats_regions alone included."""
import pytest
import yaml

from meddtfm.experiments.presets import preset_folder
from meddtfm.experiments.table1.study import Table1


def _preset(tmp_path, metrics: list[str]) -> str:
    """The ci preset with the evaluation's ``metrics``, as a YAML file."""
    preset = yaml.safe_load((preset_folder("table1") / "ci.yaml").read_text())
    preset["evaluation"]["metrics"] = metrics
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(preset))
    return str(path)


@pytest.mark.parametrize("metrics, segmenter", [(["paired", "brats_regions"], True), (["paired", "dice"], True),
                                                (["paired", "frd"], False)])
def test_the_segmenter_is_trained_for_brats_regions_alone(tmp_path, metrics, segmenter):
    study = Table1.prepare(_preset(tmp_path, metrics), tmp_path / "out", None, [], None, [], [], None)
    assert (study.plans[0].segmenter is not None) == segmenter
