"""Sequence tasks: text data and sampling, synthetic tasks with a lag, MNIST-1D as a sequence, losses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError, DataError, ShapeError
from dlcore.nn import RNNModel, TransformerLM
from dlcore.tasks import (
    BOS_ID,
    adding_problem,
    build_vocab,
    char_lm_dataset,
    copy_task,
    copy_task_baseline,
    generate_text,
    hello_example,
    load_text,
    mnist1d_sequences,
    sample_logits,
    sample_tokens,
    sequence_loss,
    sequence_metrics,
    sequence_recipe,
    synthetic_dataset,
    translation_task,
)
from dlcore.train import evaluate, fit, init_state, make_train_step


def train_scan(recipe, hparams, x_train, y_train, steps, batch_size, seed=0):
    """Init + ``steps`` keyed minibatch steps as ONE compiled program (tests stay compile-cheap)."""
    step = make_train_step(recipe)

    @jax.jit
    def run(x_train, y_train):
        state = init_state(recipe, seed, hparams, x_train[:1])

        def body(s, i):
            idx = jax.random.randint(jax.random.fold_in(s.keys["data"], i), (batch_size,), 0, x_train.shape[0])
            return step(s, {"x": x_train[idx], "y": y_train[idx]})

        return jax.lax.scan(body, state, jnp.arange(steps))

    state, metrics = run(x_train, y_train)
    return state, metrics


# --- text -----------------------------------------------------------------------------------------


def test_hello_is_the_lectures_example_and_a_tiny_rnn_learns_it():
    x, y, v = hello_example()
    assert v.chars == ("h", "e", "l", "o") and v.decode(x) == "hell" and v.decode(y) == "ello"
    assert x.tolist() == [[0, 1, 2, 2]] and y.tolist() == [[1, 2, 2, 3]]
    # The lectures' model: a vanilla tanh RNN on one-hot characters, predicting the next one.
    model = RNNModel(hidden_size=8, num_outputs=v.size, cell="rnn", head="many_to_many", vocab_size=v.size)
    state, m = train_scan(sequence_recipe(model), {"learning_rate": 0.05}, jnp.asarray(x), jnp.asarray(y), 150, 1)
    assert float(m["loss"][-1]) < 0.05 < float(m["loss"][0])
    assert float(m["accuracy"][-1]) == 1.0
    # "l" is followed by "l" once and by "o" once: only the hidden state can tell them apart.
    text = generate_text(jax.random.PRNGKey(0), model, {"params": state.params}, v, "h", 4, temperature=0.0)
    assert text == "hello"


def test_char_lm_dataset_windows_and_contiguous_splits():
    text = load_text("zen")
    assert text.startswith("The Zen of Python") and "Beautiful is better than ugly." in text
    data, v = char_lm_dataset(text, 12, stride=3, val_fraction=0.1, test_fraction=0.1)
    assert data.num_classes == v.size == len(set(text))
    np.testing.assert_array_equal(data.x_train[:, 1:], data.y_train[:, :-1])  # y is x shifted by one
    n = len(text)
    n_train = n - 2 * round(0.1 * n)
    assert v.decode(data.x_train[0]) == text[:12] and v.decode(data.x_train[1]) == text[3:15]
    assert data.x_train.shape[0] == len(range(0, n_train - 12, 3))
    assert v.decode(data.y_train[-1])[-1] in text[:n_train]  # windows never reach past their split
    assert v.decode(data.x_val[0]) == text[n_train : n_train + 12]
    src = load_text("python:textwrap")
    assert "def wrap(" in src and len(src) > 10_000
    with pytest.raises(DataError, match="too few for windows"):
        char_lm_dataset("hello world", 8)
    with pytest.raises(ConfigError, match="unknown text 'shakespeare'"):
        load_text("shakespeare")
    with pytest.raises(ConfigError, match="no pure-Python standard-library module"):
        load_text("python:not_a_module_xyz")
    with pytest.raises(DataError, match="not in the vocabulary"):
        build_vocab("abc").encode("abd")


def test_char_lm_loss_decreases_lstm_with_fit():
    data, v = char_lm_dataset(load_text("zen"), 16, stride=4)
    model = RNNModel(hidden_size=32, num_outputs=v.size, cell="lstm", head="many_to_many", vocab_size=v.size)
    recipe = sequence_recipe(model)
    res = fit(
        recipe, data, 0, hparams={"learning_rate": 1e-2}, num_steps=60, batch_size=16,
        eval_batch_size=7, evaluate_test=False, progress=False,
    )
    loss = res.history["train/loss"]
    assert abs(float(loss[0]) - math.log(v.size)) < 0.3  # an untrained LM is near uniform
    assert float(loss[-5:].mean()) < float(loss[:5].mean()) - 0.8
    assert float(res.final["val/loss"]) < math.log(v.size) - 0.5
    # Padded, batched evaluation of [N, T] labels (7 does not divide N) equals the one-shot mean.
    whole = jax.jit(lambda s, x, y: evaluate(recipe, s, x, y))(res.state, data.x_val, data.y_val)
    assert data.x_val.shape[0] % 7 != 0
    np.testing.assert_allclose(float(res.final["val/loss"]), float(whole["loss"]), rtol=1e-5)


def test_transformer_char_lm_loss_decreases():
    data, v = char_lm_dataset(load_text("zen"), 16, stride=2)
    lm = TransformerLM(vocab_size=v.size, d_model=16, num_heads=2, num_layers=1, d_ff=32, max_len=16)
    _, m = train_scan(sequence_recipe(lm), {"learning_rate": 1e-2}, data.x_train, data.y_train, 60, 16)
    loss = np.asarray(m["loss"])
    assert loss[-5:].mean() < loss[:5].mean() - 0.8


def test_sampling_is_keyed_and_temperature_zero_is_greedy():
    lm = TransformerLM(vocab_size=6, d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=12)
    prompt = jnp.array([[1, 2], [3, 4]])
    v = jax.jit(lm.init)(jax.random.PRNGKey(0), prompt)
    logits_fn = lambda t: lm.apply(v, t)  # noqa: E731
    sample = jax.jit(lambda k, temp: sample_tokens(k, logits_fn, prompt, 10, temp))
    a, b = sample(jax.random.PRNGKey(1), 1.0), sample(jax.random.PRNGKey(1), 1.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 12) and np.array_equal(a[:, :2], prompt)
    assert not np.array_equal(a, sample(jax.random.PRNGKey(2), 1.0))
    greedy = sample(jax.random.PRNGKey(1), 0.0)  # traced temperature 0 -> arg-max
    apply = jax.jit(lm.apply)
    buf = np.zeros((2, 12), np.int32)
    buf[:, :2] = prompt
    for t in range(2, 12):  # a plain host-side greedy loop
        buf[:, t] = np.asarray(jnp.argmax(apply(v, jnp.asarray(buf))[:, t - 1], -1))
    np.testing.assert_array_equal(greedy, buf)
    with pytest.raises(ShapeError, match="exceeds the positional table"):
        sample_tokens(jax.random.PRNGKey(0), logits_fn, prompt, 11, 1.0)  # 13 > max_len 12


def test_sample_logits_follows_softmax_over_temperature():
    logits = jnp.array([[0.0, 1.0, 2.0]])
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    for temp in (0.5, 2.0):
        draws = jax.jit(jax.vmap(lambda k: sample_logits(k, logits, temp)[0]))(keys)
        freq = np.bincount(np.asarray(draws), minlength=3) / len(keys)
        np.testing.assert_allclose(freq, jax.nn.softmax(logits[0] / temp), atol=0.015)
    assert sample_logits(keys[0], jnp.array([[3.0, 1.0, 2.0]]), 0.0).tolist() == [0]
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        sample_logits(keys[0], logits, -1.0)


# --- synthetic tasks --------------------------------------------------------------------------------


def test_adding_problem_shapes_markers_and_lag():
    key = jax.random.PRNGKey(3)
    x, y = adding_problem(key, 64, 20)
    assert x.shape == (64, 20, 2) and y.shape == (64,)
    marks = np.asarray(x[:, :, 1])
    assert np.all(marks.sum(1) == 2)
    first, second = np.argmax(marks, 1), 19 - np.argmax(marks[:, ::-1], 1)
    assert np.all(first < 10) and np.all(second >= 10)  # classic: one marker per half
    np.testing.assert_allclose(y, np.sum(np.asarray(x[:, :, 0]) * marks, 1), rtol=1e-6)
    xl, _ = adding_problem(key, 64, 20, lag=15)
    ml = np.asarray(xl[:, :, 1])
    assert np.all(ml[:, 20 - 1 - 15] == 1) and np.all(ml[:, : 20 - 1 - 15] == 0)  # remembered 15 steps
    np.testing.assert_array_equal(adding_problem(key, 64, 20)[0], x)  # keyed: same key, same data
    assert not np.array_equal(adding_problem(jax.random.PRNGKey(4), 64, 20)[0], x)
    with pytest.raises(ConfigError, match="lag must be in"):
        adding_problem(key, 4, 10, lag=10)


def test_lstm_beats_the_adding_problem_baseline():
    data = jax.jit(lambda k: synthetic_dataset("adding", k, 1024, 64, 256, seq_len=10))(jax.random.PRNGKey(0))
    baseline = float(jnp.mean((data.y_test - 1.0) ** 2))  # predicting E[y] = 1
    assert abs(baseline - 1 / 6) < 0.04
    recipe = sequence_recipe(RNNModel(hidden_size=16, num_outputs=1, cell="lstm"), "regress")
    state, m = train_scan(recipe, {"learning_rate": 1e-2}, data.x_train, data.y_train, 150, 32)
    test = jax.jit(lambda s, x, y: evaluate(recipe, s, x, y))(state, data.x_test, data.y_test)
    assert float(test["mse"]) < 0.1 * baseline


def test_copy_task_structure_and_baseline():
    L, lag, K = 4, 6, 5
    x, y = copy_task(jax.random.PRNGKey(0), 16, copy_len=L, lag=lag, num_symbols=K)
    assert x.shape == y.shape == (16, 2 * L + lag)
    x, y = np.asarray(x), np.asarray(y)
    assert np.all((x[:, :L] >= 1) & (x[:, :L] <= K))
    assert np.all(x[:, L : L + lag - 1] == 0) and np.all(x[:, L + lag - 1] == K + 1) and np.all(x[:, L + lag :] == 0)
    assert np.all(y[:, : L + lag] == 0) and np.array_equal(y[:, L + lag :], x[:, :L])
    assert copy_task_baseline(L, lag, K) == pytest.approx(L * math.log(K) / (2 * L + lag))
    d = synthetic_dataset("copy", jax.random.PRNGKey(0), 8, 4, 4, copy_len=L, lag=lag, num_symbols=K)
    assert d.num_classes == K + 2 and not np.array_equal(d.x_train[:4], d.x_val)  # splits use different keys


def test_lstm_learns_the_copy_task():
    L, lag, K = 3, 5, 4
    data = jax.jit(lambda k: synthetic_dataset("copy", k, 1024, 64, 256, copy_len=L, lag=lag, num_symbols=K))(
        jax.random.PRNGKey(0)
    )
    V = data.num_classes
    model = RNNModel(hidden_size=32, num_outputs=V, cell="lstm", head="many_to_many", vocab_size=V)
    recipe = sequence_recipe(model)
    state, _ = train_scan(recipe, {"learning_rate": 1e-2}, data.x_train, data.y_train, 300, 32)
    y_copy = jnp.where(jnp.arange(2 * L + lag) >= L + lag, data.y_test, -1)  # score the copied symbols only
    ev = jax.jit(lambda s, x, y: evaluate(recipe, s, x, y))
    test, copied = ev(state, data.x_test, data.y_test), ev(state, data.x_test, y_copy)
    # Init seeds 0-4 of this program: test loss 0.053, 0.070, 0.040, 0.031, 0.019 against the
    # memoryless baseline L·log K / (2L + lag) = 0.378; copied symbols right 0.957, 0.883, 0.965, 0.969,
    # 1.000 (chance 1/K = 0.25); whole copies right 0.88, 0.68, 0.90, 0.91, 1.00.
    assert float(test["loss"]) < 0.25 * copy_task_baseline(L, lag, K), test
    assert float(copied["accuracy"]) > 0.85 and float(copied["exact"]) > 0.6, copied


def test_translation_task_reverse_and_sort():
    x, y = translation_task(jax.random.PRNGKey(0), 32, length=6, num_symbols=9, kind="reverse")
    x, y = np.asarray(x), np.asarray(y)
    np.testing.assert_array_equal(y, x[:, :6][:, ::-1])
    assert np.all(x[:, 6] == BOS_ID) and np.array_equal(x[:, 7:], y[:, :-1])
    assert x[:, :6].min() >= 2 and x[:, :6].max() <= 10
    xs, ys = translation_task(jax.random.PRNGKey(0), 32, length=6, num_symbols=9, kind="sort")
    np.testing.assert_array_equal(np.asarray(ys), np.sort(np.asarray(xs)[:, :6], axis=1))
    with pytest.raises(ConfigError, match="unknown translation kind"):
        translation_task(jax.random.PRNGKey(0), 2, kind="shuffle")
    with pytest.raises(ConfigError, match="unknown synthetic task"):
        synthetic_dataset("addition", jax.random.PRNGKey(0), 1, 1, 1)


# --- MNIST-1D as a sequence ------------------------------------------------------------------------


def test_mnist1d_gru_sequence_classifier_learns(mnist1d):
    seq = mnist1d_sequences(mnist1d)
    assert seq.x_train.shape == (3600, 40, 1) and seq.x_test.shape == (1000, 40, 1)
    np.testing.assert_array_equal(seq.x_train[..., 0], mnist1d.x_train)
    recipe = sequence_recipe(RNNModel(hidden_size=16, num_outputs=10, cell="gru"), "classify")
    state, m = train_scan(recipe, {"learning_rate": 1e-2}, seq.x_train, seq.y_train, 300, 32)
    test = jax.jit(lambda s, x, y: evaluate(recipe, s, x, y))(state, seq.x_test, seq.y_test)
    loss = np.asarray(m["loss"])
    # Init seeds 0-4 of these 300 steps: first-5 loss 2.35-2.40 (log 10 = 2.30), last-20 loss
    # 1.40-1.47; train accuracy over the last 50 steps 0.359, 0.411, 0.349, 0.399, 0.376; test accuracy
    # 0.423, 0.407, 0.426, 0.332, 0.326 (chance 0.1). The GRU keeps improving with steps (1,000 steps:
    # 0.67-0.75 train, 0.65-0.74 test; issue 17 reports 0.96 train with long training).
    assert abs(loss[:5].mean() - math.log(10)) < 0.3
    assert loss[-20:].mean() < 1.6
    assert np.asarray(m["accuracy"])[-50:].mean() > 0.33
    assert float(test["accuracy"]) > 0.3, test


# --- losses and recipes ----------------------------------------------------------------------------


def test_sequence_loss_masks_negative_labels_and_smooths():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
    y = jnp.array([[1, 2, -1], [0, 3, 3]])
    logp = np.asarray(jax.nn.log_softmax(logits))
    per = sequence_loss(logits, {"y": y}, {})
    np.testing.assert_allclose(per[0], -(logp[0, 0, 1] + logp[0, 1, 2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(per[1], -(logp[1, 0, 0] + logp[1, 1, 3] + logp[1, 2, 3]) / 3, rtol=1e-6)
    eps = 0.2
    smooth = sequence_loss(logits, {"y": y}, {"label_smoothing": jnp.float32(eps)})
    target = (1 - eps) * np.eye(4)[np.maximum(np.asarray(y), 0)] + eps / 4
    ce = -np.sum(target * logp, -1)
    np.testing.assert_allclose(smooth[0], ce[0, :2].mean(), rtol=1e-5)
    np.testing.assert_allclose(smooth[1], ce[1].mean(), rtol=1e-5)
    met = sequence_metrics(jnp.asarray(np.eye(4)[[[1, 0, 0], [0, 3, 2]]]), {"y": y})
    np.testing.assert_allclose(met["accuracy"], [0.5, 2 / 3], rtol=1e-6)
    np.testing.assert_array_equal(met["exact"], [0.0, 0.0])
    with pytest.raises(ShapeError, match="logits \\[B, T, V\\] and labels \\[B, T\\]"):
        sequence_loss(logits, {"y": y[:, :2]}, {})
    with pytest.raises(ConfigError, match="unknown task kind"):
        sequence_recipe(RNNModel(), "translate")
    with pytest.raises(ConfigError, match="clip_norm must be positive"):
        sequence_recipe(RNNModel(), clip_norm=0.0)
