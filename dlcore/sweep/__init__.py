"""Sweeps: many seeds (and hyperparameters) as one compiled program."""

from dlcore.sweep._seeds import (
    broadcast_hparams,
    init_states,
    parse_seeds,
    run_batch,
    run_seeds,
    seed_mesh,
)
