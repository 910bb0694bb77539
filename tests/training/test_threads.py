"""CPU training leaves the loader workers their cores; loaders never ask for more workers than cores."""
import torch

from meddtfm.data import loader_workers
from meddtfm.training.loop import cpu_threads


def test_threads_leave_cores_to_loader_workers(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("meddtfm.training.loop.usable_cpus", lambda: 8)
    monkeypatch.setattr("meddtfm.data.base.usable_cpus", lambda: 8)
    assert cpu_threads(0) == 8 and cpu_threads(3) == 5 and cpu_threads(16) == 1


def test_an_explicit_omp_setting_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr("meddtfm.training.loop.usable_cpus", lambda: 8)
    assert cpu_threads(2) == torch.get_num_threads()


def test_loader_workers_are_capped_at_usable_cpus(monkeypatch):
    monkeypatch.setattr("meddtfm.data.base.usable_cpus", lambda: 2)
    assert loader_workers(0) == 0 and loader_workers(2) == 2 and loader_workers(4) == 2
