"""``meddtfm.data.DATASETS``: every loader by name, in the one catalogue that ``data.name``'s check reads."""
import pytest

from meddtfm import config
from meddtfm.data import DATASETS, MedicalDataset, dataset_class
from meddtfm.data.phantoms import PhantomDataset
from meddtfm.registry import UnknownNameError


def test_the_loaders_and_the_config_check_read_one_catalogue():
    assert DATASETS is config.DATASETS
    with pytest.raises(config.ConfigError, match="data.name='mnist' is not one of phantoms, brats2021"):
        config.DataConfig(name="mnist")


@pytest.mark.parametrize("name", DATASETS.names())
def test_each_entry_is_a_dataset_class(name):
    assert issubclass(dataset_class(name), MedicalDataset) and DATASETS.entry(name).description


def test_unknown_dataset_lists_the_choices():
    assert dataset_class("phantoms") is PhantomDataset
    with pytest.raises(UnknownNameError, match="unknown dataset 'mnist'; choose from phantoms, brats2021"):
        dataset_class("mnist")
