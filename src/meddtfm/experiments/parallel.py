"""Several training runs at once, each a ``meddtfm train`` / ``pretrain-encoder`` / ``distill-steps`` child process.

``train_all`` trains runs up to ``jobs`` at a time. With one job it trains them one after the other in
this process (``runs.train_unless_finished``, as Table 1 does; an error stops the study). With more, each
unfinished run is the child ``python -m meddtfm train --model M --config RUN/requested.yaml --out RUN``
(``pretrain-encoder`` for the segmenters, ``distill-steps --checkpoint FLOW`` for a few-step run): the run
folder's config is the contract, and the child resumes from the folder's checkpoints as the command always
does. A child gets ``OMP_NUM_THREADS`` = usable cores // jobs (at least 1), the same ``meddtfm`` package as
this process, and writes its output and progress bar to ``RUN/train.log``; a child that fails is reported
with that log, and the others go on.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from ..config import save_config
from ..data.base import usable_cpus
from .runs import FEW_STEP, SEGMENTERS, Run, Trainers, finished, train_unless_finished

log = logging.getLogger(__name__)
REQUESTED = "requested.yaml"  # the config a child is started with (it writes its own config.yaml from it)
LOG = "train.log"
POLL_SECONDS = 0.2
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding this meddtfm package


@dataclass
class Failure:
    """A run whose child process did not leave final weights: what it was, its log and exit status."""

    what: str
    log: Path
    returncode: int


class TrainingFailed(RuntimeError):
    """Runs that later stages need did not finish; the message names each one's log."""

    def __init__(self, failed: Sequence[Failure]) -> None:
        super().__init__("training failed: " + "; ".join(f"{f.what} (exit status {f.returncode}, log {f.log})"
                                                           for f in failed))
        self.failed = list(failed)


@dataclass
class _Child:
    run: Run
    what: str
    proc: subprocess.Popen
    log: IO[bytes]


def child_command(run: Run) -> list[str]:
    """The command line that trains ``run`` from ``RUN/requested.yaml`` into ``RUN``."""
    if run.model == FEW_STEP:
        command = ["distill-steps", "--checkpoint", str(run.cfg.few_step.checkpoint)]
    else:
        command = ["pretrain-encoder" if run.model in SEGMENTERS else "train", "--model", run.model]
    return [sys.executable, "-m", "meddtfm", *command, "--config", str(run.out / REQUESTED), "--out", str(run.out)]


def child_env(jobs: int) -> dict[str, str]:
    """This process's environment with one share of the cores per child and this ``meddtfm`` importable first."""
    threads = str(max(1, usable_cpus() // jobs))
    path = os.pathsep.join([str(SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONPATH": path}


def _start(run: Run, what: str, env: dict[str, str]) -> _Child:
    run.out.mkdir(parents=True, exist_ok=True)
    save_config(run.cfg, run.out / REQUESTED)
    fh = open(run.out / LOG, "ab")  # a resumed run appends to the log of the interrupted one
    log.info("%s: training in a child process, log %s", what, run.out / LOG)
    try:
        proc = subprocess.Popen(child_command(run), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env)
    except OSError:
        fh.close()
        raise
    return _Child(run, what, proc, fh)


def _children(todo: Sequence[tuple[Run, str]], jobs: int, bar: tqdm) -> list[Failure]:
    """Run ``todo`` as child processes, at most ``jobs`` at once; the runs that did not finish."""
    env, pending, running, failed = child_env(jobs), list(todo), [], []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                running.append(_start(*pending.pop(0), env))
            time.sleep(POLL_SECONDS)
            for child in [c for c in running if c.proc.poll() is not None]:
                running.remove(child)
                child.log.close()
                if child.proc.returncode != 0 or finished(child.run.out) is None:
                    failure = Failure(child.what, child.run.out / LOG, child.proc.returncode)
                    log.error("%s failed (exit status %d): see %s", failure.what, failure.returncode, failure.log)
                    failed.append(failure)
                bar.update(1)
    finally:
        for child in running:  # interrupted: stop the children this call started
            child.proc.terminate()
            child.proc.wait()
            child.log.close()
    return failed


def train_all(runs: Sequence[tuple[Run, str]], jobs: int, trainers: Trainers, desc: str) -> list[Failure]:
    """Train every ``(run, what)`` not finished yet, up to ``jobs`` at once; the runs that failed (only with
    ``jobs`` > 1: in this process an error stops the study)."""
    todo = []
    for run, what in runs:
        if finished(run.out) is not None:
            log.info("%s: reusing %s", what, run.out / "final.safetensors")
        else:
            todo.append((run, what))
    with tqdm(total=len(runs), initial=len(runs) - len(todo), desc=desc, unit="run", dynamic_ncols=True) as bar:
        if jobs > 1:
            return _children(todo, jobs, bar)
        for run, what in todo:
            train_unless_finished(run, what, trainers)
            bar.update(1)
    return []
