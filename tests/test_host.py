"""dlcore.host: host copies and run-once compilation (same bits as XLA's default level)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.data import carve_indices
from dlcore.host import ONCE_COMPILER_OPTIONS, jit_once, once_compiler_options, to_host
from dlcore.models import ConvBase1D
from dlcore.nn import MLP, RNNModel
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, init_state
from dlcore import random as drandom


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


@pytest.mark.parametrize("model,x_shape", [
    (MLP(widths=(100, 100), num_outputs=10), (1, 40)),
    (MLP(widths=(32,), num_outputs=4, norm="batch", dropout_rate=0.2), (1, 12)),
    (ConvBase1D(), (1, 40)),
    (RNNModel(hidden_size=16, num_outputs=10, cell="lstm"), (1, 40)),
])
def test_run_once_init_is_bit_identical_to_the_default_level(model, x_shape):
    r = Recipe(model, optimizer_fn("adam"))
    x1 = np.zeros(x_shape, np.float32)
    f = lambda s, h: init_state(r, s, h, x1)  # noqa: E731
    hp = {"learning_rate": jnp.float32(1e-2)}
    for seed in (0, 7):
        fast = jit_once(f)(jnp.int32(seed), hp)
        default = jax.jit(f)(jnp.int32(seed), hp)
        assert _leaves_equal(fast, default)
    assert _leaves_equal(jit_once(f)(jnp.int32(3), hp), init_state(r, 3, hp, x1))  # and to eager


def test_run_once_options_apply_on_cpu_only_when_xla_flags_leave_the_level(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert once_compiler_options() == (ONCE_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None)
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    assert once_compiler_options() is None  # the user's choice wins


def test_carved_split_equals_the_eager_permutation():
    for seed, n, frac in ((0, 4000, 0.1), (5, 37, 0.25)):
        perm = np.asarray(jax.random.permutation(drandom.key(seed, "split"), n))
        n_val = int(round(n * frac))
        train, val = carve_indices(n, frac, seed)
        np.testing.assert_array_equal(train, np.sort(perm[n_val:]))
        np.testing.assert_array_equal(val, np.sort(perm[:n_val]))


def test_to_host_copies_a_tree():
    out = to_host({"a": jnp.arange(3), "b": (jnp.ones(2),)})
    assert isinstance(out["a"], np.ndarray) and out["a"].tolist() == [0, 1, 2]
    assert out["b"][0].tolist() == [1.0, 1.0]
