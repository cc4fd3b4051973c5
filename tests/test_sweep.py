"""Seeds as one vmapped program: randomness streams identical alone and in sweeps of any size."""

import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dlcore.data import chunk_batch_indices
from dlcore.errors import ConfigError
from dlcore.manifest import params_sha256
from dlcore.nn import MLP
from dlcore.optim import optimizer_fn
from dlcore.sweep import init_states, parse_seeds, run_seeds
from dlcore.train import Recipe, fit, init_state

R = Recipe(MLP(widths=(16,), num_outputs=3), optimizer_fn("adam"))


@pytest.mark.parametrize("sweep", [[5], [0, 5, 9], [5, 1, 2, 3, 4, 6, 7, 8]])
def test_seed_init_and_data_order_identical_in_any_sweep(tiny_data, sweep):
    x1 = tiny_data.x_train[:1]
    alone = init_state(R, 5, {"learning_rate": 1e-2}, x1)
    batch = init_states(R, sweep, {"learning_rate": 1e-2}, x1)
    i = sweep.index(5)
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(batch.params)):
        np.testing.assert_array_equal(a, b[i])  # bitwise
    for k in alone.keys:
        np.testing.assert_array_equal(alone.keys[k], batch.keys[k][i])
    n = tiny_data.x_train.shape[0]
    order_alone = chunk_batch_indices(alone.keys["data"], 0, 30, n, 32)
    order_batch = jax.vmap(lambda k: chunk_batch_indices(k, 0, 30, n, 32))(batch.keys["data"])
    np.testing.assert_array_equal(order_alone, order_batch[i])


def test_sweep_results_match_single_runs_in_distribution(tiny_data):
    kw = dict(hparams={"learning_rate": 1e-2}, num_steps=40, batch_size=32, eval_every=20, progress=False)
    sweep = run_seeds(R, tiny_data, [0, 1], **kw)
    alone = fit(R, tiny_data, 1, **kw)
    assert sweep.history["train/loss"].shape == (2, 40)
    # Trained weights agree to float noise only (batched kernels round differently).
    for a, b in zip(jax.tree.leaves(alone.state.params), jax.tree.leaves(sweep.state.params)):
        np.testing.assert_allclose(a, b[1], atol=1e-3)
    assert abs(float(alone.final["test/accuracy"]) - float(sweep.final["test/accuracy"][1])) < 0.05


def test_per_run_hparams(tiny_data):
    res = run_seeds(R, tiny_data, [0, 0], hparams={"learning_rate": np.array([0.0, 1e-2])}, num_steps=20,
                    batch_size=32, eval_every=20, progress=False)
    p0 = jax.tree.map(lambda a: a[0], res.state.params)
    init = init_state(R, 0, {"learning_rate": 0.0}, tiny_data.x_train[:1])
    assert params_sha256(p0) == params_sha256(init.params)  # lr 0: nothing moved
    assert res.final["val/loss"][1] < res.final["val/loss"][0]


def test_same_seed_two_processes_identical_bytes(tmp_path):
    code = textwrap.dedent(
        """
        import numpy as np
        from dlcore.data import from_arrays
        from dlcore.manifest import params_sha256
        from dlcore.nn import MLP
        from dlcore.optim import optimizer_fn
        from dlcore.train import Recipe, fit
        x = np.linspace(-1, 1, 600, dtype=np.float32).reshape(100, 6)
        y = (np.arange(100) % 3)
        data = from_arrays(x, y, x[:20], y[:20], val_fraction=0.2)
        r = Recipe(MLP(widths=(8,), num_outputs=3, dropout_rate=0.1), optimizer_fn("adam"))
        res = fit(r, data, 11, hparams={"learning_rate": 1e-2, "dropout_rate": 0.1}, num_steps=30,
                  batch_size=16, eval_every=15, progress=False)
        print(params_sha256(res.state.params))
        """
    )
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120) for _ in range(2)]
    for o in outs:
        assert o.returncode == 0, o.stderr[-2000:]
    h = [o.stdout.strip().splitlines()[-1] for o in outs]
    assert len(h[0]) == 64 and h[0] == h[1]


@pytest.mark.parametrize("spec,out", [("3", [0, 1, 2]), ("2:4", [2, 3]), ("7,1", [7, 1]), (2, [0, 1])])
def test_parse_seeds(spec, out):
    assert parse_seeds(spec) == out


@pytest.mark.parametrize("bad", ["a", "3:1", "1,1", "", "-1"])
def test_parse_seeds_bad(bad):
    with pytest.raises(ConfigError):
        parse_seeds(bad)


def test_conv_impl_auto_resolves_by_runs_per_cpu_device():
    from dlcore.models import ConvBase1D
    from dlcore.parallel import make_mesh
    from dlcore.sweep import resolve_conv_impl

    r = Recipe(ConvBase1D(channels=4), optimizer_fn("sgd"))
    assert resolve_conv_impl(r, 4).conv_impl == "matmul"  # 4 runs vmapped on one CPU device
    assert resolve_conv_impl(r, 1).conv_impl == "native"
    assert resolve_conv_impl(r.__class__(r.model, r.optimizer, conv_impl="native"), 4).conv_impl == "native"
    one_each = make_mesh(seed=1, data=1, devices=jax.devices()[:1])
    assert resolve_conv_impl(r, 1, one_each).conv_impl == "native"
    with pytest.raises(ConfigError, match="conv_impl='fft' is not one of"):
        Recipe(ConvBase1D(), optimizer_fn("sgd"), conv_impl="fft")


def test_cnn_sweep_on_cpu_computes_convolutions_as_matmuls():
    """The default sweep of a CNN on CPU is the `conv_impl="matmul"` program (bit for bit) and agrees
    with XLA's vmapped convolution to float32 rounding."""
    from dlcore.data import from_arrays
    from dlcore.models import ConvBase1D

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 20)).astype(np.float32)
    y = (x[:, :10].sum(1) > 0).astype(np.int32)
    data = from_arrays(x[:64], y[:64], x[64:], y[64:], val_fraction=0.25, num_classes=2, name="conv")
    kw = dict(hparams={"learning_rate": 1e-2}, num_steps=12, batch_size=16, eval_every=6, progress=False,
              devices=jax.devices()[:1])
    model = ConvBase1D(num_classes=2, channels=4)
    runs = {impl: run_seeds(Recipe(model, optimizer_fn("adam"), conv_impl=impl), data, [0, 1, 2], **kw)
            for impl in ("auto", "matmul", "native")}
    for a, b in zip(jax.tree.leaves(runs["auto"].state.params), jax.tree.leaves(runs["matmul"].state.params)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(runs["matmul"].state.params), jax.tree.leaves(runs["native"].state.params)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(runs["matmul"].history["train/loss"], runs["native"].history["train/loss"], rtol=1e-5)
