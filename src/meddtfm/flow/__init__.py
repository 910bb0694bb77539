"""Flow matching core: the linear path, noise-data couplings and ODE solvers (``SOLVERS``)."""

from meddtfm.flow.coupling import independent_coupling, ot_coupling, ot_permutation, squared_distances
from meddtfm.flow.path import LinearPath, PathSample, expand_time, one_step_estimate, sample_time
from meddtfm.flow.solver import SOLVERS, Solver, SolverResult, integrate, shift_time, time_grid

__all__ = [
    "SOLVERS",
    "LinearPath",
    "PathSample",
    "Solver",
    "SolverResult",
    "expand_time",
    "independent_coupling",
    "integrate",
    "one_step_estimate",
    "ot_coupling",
    "ot_permutation",
    "sample_time",
    "shift_time",
    "squared_distances",
    "time_grid",
]
