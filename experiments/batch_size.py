"""Batch size: the variance of minibatch gradients falls as 1/B; larger batches cost more per step,
less per example, and at a fixed number of steps reach better accuracy.

The lectures (SGD): a minibatch gradient ``g_B`` is an unbiased estimate of the full-batch gradient
``g`` whose variance ``E‖g_B − g‖² = tr(Σ)/B · (N − B)/(N − 1)`` (``Σ`` the covariance of the
per-example gradients, drawn without replacement) — so a larger batch gives a less noisy step at
a higher cost per step. Here the MNIST-1D MLP (40-100-100-10, Adam 1e-3, 2000 steps) trains at batch
sizes 10, 30, 100, 300 and 1000 (a structural axis: one program each; the same seed gives the same
initial parameters at every batch size). Measured for every run (``config.measure``):

* ``train/grad_var_init`` — ``E‖g_B − g‖²`` over 32 minibatches of the run's batch size, at the
  initial parameters (equal across batch sizes for a seed, so the 1/B law is tested on the same
  ``Σ``), and ``train/grad_trace_init`` — ``B · (N−1)/(N−B)`` times it, the law's ``tr Σ``, which
  must not depend on B; ``train/grad_var``/``train/grad_trace`` the same at the final parameters
  (:func:`dlcore.train.gradient_noise`);
* ``train/step_ms`` and ``train/us_per_example`` — wall-clock time of a compiled training step on
  this machine (:func:`dlcore.diagnostics.step_seconds`; not reproducible bit for bit);
* the accuracy after the same number of steps (``val/``, ``test/accuracy``; the curves in
  ``point_curves.png`` show accuracy against steps).

Run:

    dlcore run batch_size
    dlcore report runs/batch_size/<timestamp>

Faster look: dlcore run batch_size --config.num_steps=500 --config.sweep.seeds=4
Larger: --config.num_steps=6000 --config.measure.gradient_noise.num_batches=128
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(hparams=dict(learning_rate=1e-3), num_steps=2000,
                    measure=dict(gradient_noise=dict(num_batches=32), step_time=dict(probe_steps=20)))
    c.sweep = study(
        dict(batch_size=dict(path="batch_size", values=(10, 30, 100, 300, 1000), integer=True)),
        select=dict(group_by=("batch_size",)),  # every batch size is tested; nothing is chosen
    )
    c.claim = dict(
        text="Minibatch gradient variance falls as 1/B (tr Σ = B·Var constant); a larger batch costs more time "
             "per step but less per example, and after the same number of steps it is more accurate",
        checks=(
            "train/grad_var_init: batch_size=10 > batch_size=100",
            "train/grad_var_init: batch_size=100 > batch_size=1000",
            "train/grad_trace_init: batch_size=10 ~ batch_size=1000",
            "train/step_ms: batch_size=1000 > batch_size=10",
            "train/us_per_example: batch_size=1000 < batch_size=10",
            "test/accuracy: batch_size=100 > batch_size=10",
        ),
    )
    return c
