"""Training machinery shared by every model: the loop, checkpoints, logs, distributed helpers."""
