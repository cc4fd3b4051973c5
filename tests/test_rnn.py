"""Recurrent cells vs NumPy implementations of the lectures' equations, gradients, masking, heads."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError, ShapeError
from dlcore.nn import (
    GRUCell, LSTMCarry, LSTMCell, Recurrent, RNNModel, SimpleRNNCell, StackedRNN, make_cell, recurrent_initializer
)
from dlcore.tasks import sequence_recipe
from dlcore.train import init_state, make_train_step


def init(model, *args, **kw):
    """Jitted init: one compilation instead of one per primitive (eager init is compile-bound)."""
    return jax.jit(lambda k, *a: model.init(k, *a, **kw))(jax.random.PRNGKey(1), *args)


def apply(model, variables, *args, **kw):
    return jax.jit(lambda v, *a: model.apply(v, *a, **kw))(variables, *args)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --- The lectures' NumPy LSTM (deck 002, "LSTM in code") -------------------------------------------


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Verbatim from the lectures (gate order i, f, o, g; one fused 4H pre-activation)."""
    N, H = prev_h.shape
    a = np.dot(x, Wx) + np.dot(prev_h, Wh) + b
    ai, af, ao, ag = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    i, f, o, g = sigmoid(ai), sigmoid(af), sigmoid(ao), np.tanh(ag)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (i, f, o, g, a, ai, af, ao, ag, Wx, Wh, b, prev_h, prev_c, x, next_c, next_h)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """The lectures' backward pass with its two typos fixed: ``dag`` uses ``1 - tanh(ag)**2``
    (the slide has ``(1 - tanh(ag))**2``) and ``dprev_h = da @ Wh.T``."""
    i, f, o, g, a, ai, af, ao, ag, Wx, Wh, b, prev_h, prev_c, x, next_c, next_h = cache
    do = np.tanh(next_c) * dnext_h
    dnext_c = dnext_c + o * (1 - np.tanh(next_c) ** 2) * dnext_h
    df, dprev_c, di, dg = prev_c * dnext_c, f * dnext_c, g * dnext_c, i * dnext_c
    dai = sigmoid(ai) * (1 - sigmoid(ai)) * di
    daf = sigmoid(af) * (1 - sigmoid(af)) * df
    dao = sigmoid(ao) * (1 - sigmoid(ao)) * do
    dag = (1 - np.tanh(ag) ** 2) * dg
    da = np.hstack((dai, daf, dao, dag))
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def gru_step(x, h, Wx, Wh, bx, bh):
    H = h.shape[1]
    ax, ah = x @ Wx + bx, h @ Wh + bh
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])
    n = np.tanh(ax[:, 2 * H :] + r * ah[:, 2 * H :])
    return (1 - z) * n + z * h


def _random(rng, *shape, scale=0.5):
    return (rng.normal(size=shape) * scale).astype(np.float32)


D, H, B, T = 3, 5, 4, 6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_lstm_cell_equals_lecture_numpy(rng):
    Wx, Wh, b = _random(rng, D, 4 * H), _random(rng, H, 4 * H), _random(rng, 4 * H)
    x, h, c = _random(rng, B, D, scale=1), _random(rng, B, H, scale=1), _random(rng, B, H, scale=1)
    params = {"params": {"W_x": Wx, "W_h": Wh, "b": b}}
    (c1, h1), out = LSTMCell(H).apply(params, LSTMCarry(jnp.asarray(c), jnp.asarray(h)), jnp.asarray(x))
    ref_h, ref_c, _ = lstm_step_forward(x, h, c, Wx, Wh, b)
    np.testing.assert_allclose(h1, ref_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c1, ref_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, h1)


def test_lstm_backward_equals_lecture_numpy(rng):
    Wx, Wh, b = _random(rng, D, 4 * H), _random(rng, H, 4 * H), _random(rng, 4 * H)
    x, h, c = _random(rng, B, D, scale=1), _random(rng, B, H, scale=1), _random(rng, B, H, scale=1)
    dh, dc = _random(rng, B, H, scale=1), _random(rng, B, H, scale=1)
    cell = LSTMCell(H)

    def f(x, h, c, Wx, Wh, b):
        carry, _ = cell.apply({"params": {"W_x": Wx, "W_h": Wh, "b": b}}, LSTMCarry(c, h), x)
        return carry.h, carry.c

    _, vjp = jax.vjp(f, *(jnp.asarray(a) for a in (x, h, c, Wx, Wh, b)))
    got = vjp((jnp.asarray(dh), jnp.asarray(dc)))
    _, _, cache = lstm_step_forward(x, h, c, Wx, Wh, b)
    ref = lstm_step_backward(dh, dc, cache)
    for name, g, r in zip(("dx", "dh", "dc", "dWx", "dWh", "db"), got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5, err_msg=name)


def test_lstm_sequence_equals_numpy_loop(rng):
    cell = LSTMCell(H)
    x = _random(rng, B, T, D, scale=1)
    r = Recurrent(cell)
    v = init(r, jnp.asarray(x))
    p = {k: np.asarray(a) for k, a in v["params"]["cell"].items()}
    carry, y = apply(r, v, jnp.asarray(x))
    h = c = np.zeros((B, H), np.float32)
    for t in range(T):
        h, c, _ = lstm_step_forward(x[:, t], h, c, p["W_x"], p["W_h"], p["b"])
        np.testing.assert_allclose(y[:, t], h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry.c, c, rtol=1e-5, atol=1e-5)


def test_gru_cell_equals_numpy_and_flax(rng):
    Wx, Wh = _random(rng, D, 3 * H), _random(rng, H, 3 * H)
    bx, bh = _random(rng, 3 * H), _random(rng, 3 * H)
    x, h = _random(rng, B, D, scale=1), _random(rng, B, H, scale=1)
    new_h, out = GRUCell(H).apply({"params": {"W_x": Wx, "W_h": Wh, "b_x": bx, "b_h": bh}}, jnp.asarray(h), jnp.asarray(x))
    np.testing.assert_allclose(new_h, gru_step(x, h, Wx, Wh, bx, bh), rtol=1e-5, atol=1e-6)
    # An independent implementation: Flax's GRUCell with the same weights (its r/z have one bias).
    bh_flax = np.concatenate([np.zeros(2 * H, np.float32), bh[2 * H :]])
    bx_flax = bx + np.concatenate([bh[: 2 * H], np.zeros(H, np.float32)])
    blk = lambda w, i: w[:, i * H : (i + 1) * H]  # noqa: E731
    fp = {
        "ir": {"kernel": blk(Wx, 0), "bias": bx_flax[:H]}, "iz": {"kernel": blk(Wx, 1), "bias": bx_flax[H : 2 * H]},
        "in": {"kernel": blk(Wx, 2), "bias": bx_flax[2 * H :]}, "hr": {"kernel": blk(Wh, 0)},
        "hz": {"kernel": blk(Wh, 1)}, "hn": {"kernel": blk(Wh, 2), "bias": bh_flax[2 * H :]},
    }
    flax_h, _ = nn.GRUCell(H).apply({"params": fp}, jnp.asarray(h), jnp.asarray(x))
    np.testing.assert_allclose(new_h, flax_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, new_h)


def test_vanilla_rnn_cell_is_the_lecture_formula(rng):
    Wxh, Whh, b = _random(rng, D, H), _random(rng, H, H), _random(rng, H)
    x, h = _random(rng, B, D, scale=1), _random(rng, B, H, scale=1)
    new_h, _ = SimpleRNNCell(H).apply({"params": {"W_xh": Wxh, "W_hh": Whh, "bias": b}}, jnp.asarray(h), jnp.asarray(x))
    np.testing.assert_allclose(new_h, np.tanh(h @ Whh + x @ Wxh + b), rtol=1e-5, atol=1e-6)
    no_bias = SimpleRNNCell(H, use_bias=False).apply({"params": {"W_xh": Wxh, "W_hh": Whh}}, jnp.asarray(h), jnp.asarray(x))[0]
    np.testing.assert_allclose(no_bias, np.tanh(h @ Whh + x @ Wxh), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_gradients_match_central_differences(cell, rng):
    # Backprop through time vs central differences of the loss along random directions (float64).
    with jax.enable_x64(True):
        m = Recurrent(make_cell(cell, 4))
        x = jnp.asarray(rng.normal(size=(2, 5, 3)))
        shapes = jax.eval_shape(m.init, jax.random.PRNGKey(0), x)
        params = jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape)), shapes)
        w = jnp.asarray(rng.normal(size=(1, 1, 4)))

        def loss(p):
            carry, y = m.apply(p, x)
            return jnp.sum(jnp.tanh(y) * w)

        loss_jit, grads = jax.jit(loss), jax.jit(jax.grad(loss))(params)
        assert all(g.dtype == jnp.float64 for g in jax.tree.leaves(grads))
        eps = 1e-6
        for _ in range(3):
            d = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), params)
            plus = jax.tree.map(lambda p, v: p + eps * v, params, d)
            minus = jax.tree.map(lambda p, v: p - eps * v, params, d)
            numeric = (loss_jit(plus) - loss_jit(minus)) / (2 * eps)
            analytic = sum(jnp.vdot(g, v) for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(d)))
            np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-6, atol=1e-8)


def test_unidirectional_rnn_output_ignores_future_inputs():
    m = RNNModel(hidden_size=6, num_outputs=3, cell="lstm", head="many_to_many")
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 5, 2))
    v = init(m, x)
    jac = jax.jit(jax.jacrev(lambda x: m.apply(v, x)))(x)[0, :, :, 0, :, :]  # [T_out, C, T_in, D]
    norms = np.asarray(jnp.sum(jnp.abs(jac), axis=(1, 3)))
    assert np.all(np.triu(norms, k=1) == 0.0) and np.all(np.diag(norms) > 0)


def test_padding_mask_equals_the_shorter_sequence():
    # Bidirectional: checks the masked carry in both scan directions at once.
    bidirectional = True
    m = RNNModel(hidden_size=5, num_outputs=3, cell="gru", bidirectional=bidirectional)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7))
    v = init(m, x)
    mask = jnp.arange(7)[None, :] < jnp.array([[4], [7]])
    padded = x.at[0, 4:].set(99.0)  # garbage in the padding must not matter
    out = apply(m, v, padded, mask_BxT=mask)
    np.testing.assert_allclose(out[0], apply(m, v, x[:1, :4])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], apply(m, v, x[1:])[0], rtol=1e-5, atol=1e-6)
    stacked = StackedRNN(hidden_size=5, cell="gru", bidirectional=bidirectional)
    y, _ = apply(stacked, init(stacked, padded[..., None]), padded[..., None], mask_BxT=mask)
    assert float(jnp.max(jnp.abs(y[0, 4:]))) == 0.0


def test_recurrent_initializers():
    key = jax.random.PRNGKey(0)
    w = recurrent_initializer("orthogonal", num_gates=4)(key, (6, 24))
    for g in range(4):
        blk = w[:, g * 6 : (g + 1) * 6]
        np.testing.assert_allclose(blk.T @ blk, np.eye(6), atol=1e-5)
    assert not np.allclose(w[:, :6], w[:, 6:12])  # each gate's block is drawn separately
    ident = recurrent_initializer("identity", num_gates=3, scale=0.5)(key, (4, 12))
    np.testing.assert_array_equal(ident, np.tile(0.5 * np.eye(4), (1, 3)))
    v = LSTMCell(4, recurrent_init="identity").init(key, LSTMCarry(jnp.zeros((1, 4)), jnp.zeros((1, 4))), jnp.ones((1, 2)))
    np.testing.assert_array_equal(v["params"]["W_h"], np.tile(np.eye(4), (1, 4)))
    np.testing.assert_array_equal(v["params"]["b"][4:8], np.ones(4))  # forget-gate bias 1
    with pytest.raises(ShapeError, match="fused recurrent kernel"):
        recurrent_initializer("orthogonal", num_gates=4)(key, (6, 12))


def test_irnn_identity_init_keeps_the_state():
    # The lectures' advice (W = I, b = 0): with ReLU and no input the hidden state never decays.
    m = Recurrent(SimpleRNNCell(3, activation="relu", recurrent_init="identity"))
    x = jnp.zeros((1, 50, 2)).at[0, 0].set(jnp.array([1.0, 2.0]))
    v = init(m, x)
    _, y = apply(m, v, x)
    np.testing.assert_allclose(y[0, -1], jax.nn.relu(y[0, 0]), rtol=1e-6)


def test_heads_shapes_and_params():
    key = jax.random.PRNGKey(0)
    seq = jnp.ones((2, 6, 3))

    def shapes(m, x):  # traced only (no compilation): shapes of parameters and outputs
        v = jax.eval_shape(m.init, key, x)
        return v, jax.eval_shape(m.apply, v, x).shape

    v1, out1 = shapes(RNNModel(hidden_size=4, num_outputs=5, cell="rnn", num_layers=3, bidirectional=True), seq)
    assert out1 == (2, 5)
    assert sorted(v1["params"]["rnn"]) == [f"layer_{i}_{d}" for i in range(3) for d in ("bw", "fw")]
    assert v1["params"]["rnn"]["layer_1_fw"]["W_xh"].shape == (8, 4)  # reads [fw | bw] of layer 0
    tok = jnp.zeros((2, 6), jnp.int32)
    v2, out2 = shapes(RNNModel(hidden_size=4, num_outputs=5, head="many_to_many", vocab_size=7, embed_dim=3), tok)
    assert out2 == (2, 6, 5) and v2["params"]["embed"]["embedding"].shape == (7, 3)
    _, out3 = shapes(RNNModel(hidden_size=4, num_outputs=5, cell="gru", head="one_to_many", length=9), jnp.ones((2, 3)))
    assert out3 == (2, 9, 5)


def test_dropout_between_layers_is_keyed():
    m = RNNModel(hidden_size=4, num_outputs=2, cell="gru", num_layers=2, dropout_rate=0.5)
    seq = jnp.ones((2, 6, 3))
    v = init(m, seq)
    drop = jax.jit(lambda k: m.apply(v, seq, train=True, rngs={"dropout": k}))
    a, b = drop(jax.random.PRNGKey(1)), drop(jax.random.PRNGKey(2))
    assert not np.allclose(a, b) and np.array_equal(drop(jax.random.PRNGKey(1)), a)


def test_jit_equals_eager():
    m = RNNModel(hidden_size=6, num_outputs=3, cell="gru", bidirectional=True)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 2))
    v = init(m, x)
    np.testing.assert_allclose(jax.jit(m.apply)(v, x), m.apply(v, x), rtol=1e-6, atol=1e-6)


def test_gradient_clipping_is_wired_in():
    # The recipe's optimizer clips the global gradient norm: one SGD step moves the parameters by
    # exactly lr * clip_norm when the gradient is longer, and by lr * |g| without clipping.
    m = RNNModel(hidden_size=8, num_outputs=2, cell="rnn", recurrent_init=recurrent_initializer("identity", scale=1.5))
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 12, 2))
    batch = {"x": x, "y": jnp.array([0, 1, 0, 1])}
    for clip in (0.05, None):
        r = sequence_recipe(m, "classify", optimizer="sgd", clip_norm=clip)
        s = init_state(r, 0, {"learning_rate": 0.1}, x[:1])
        s1, metrics = jax.jit(make_train_step(r))(s, batch)
        delta = jax.tree.map(lambda a, b: a - b, s1.params, s.params)
        moved = float(jnp.sqrt(sum(jnp.sum(d**2) for d in jax.tree.leaves(delta))))
        grad_norm = float(metrics["grad_norm"])
        assert grad_norm > 0.5
        np.testing.assert_allclose(moved, 0.1 * (grad_norm if clip is None else clip), rtol=1e-4)


def test_bad_input_errors():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ConfigError, match="unknown cell 'lsm'.*lstm"):
        make_cell("lsm", 4)
    with pytest.raises(ConfigError, match="unknown head"):
        RNNModel(head="many_to_few").init(key, jnp.ones((1, 3, 2)))
    with pytest.raises(ConfigError, match="length"):
        RNNModel(head="one_to_many").init(key, jnp.ones((1, 3)))
    with pytest.raises(ShapeError, match="integer token ids"):
        RNNModel(vocab_size=4).init(key, jnp.ones((1, 3)))
    with pytest.raises(ShapeError, match="mask must be"):
        RNNModel().init(key, jnp.ones((1, 3, 2)), mask_BxT=jnp.ones((1, 4), bool))
    with pytest.raises(ConfigError, match="recurrent_init"):
        make_cell("gru", 4, recurrent_init="eye").init(key, jnp.zeros((1, 4)), jnp.ones((1, 2)))
    with pytest.raises(ConfigError, match="num_layers"):
        StackedRNN(num_layers=0).init(key, jnp.ones((1, 3, 2)))
