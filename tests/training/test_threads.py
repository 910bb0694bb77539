"""CPU training leaves the loader workers their cores."""
import torch

from meddtfm.training.loop import cpu_threads


def test_threads_leave_cores_to_loader_workers(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert cpu_threads(0) == 8 and cpu_threads(3) == 5 and cpu_threads(16) == 1


def test_an_explicit_omp_setting_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert cpu_threads(2) == torch.get_num_threads()
