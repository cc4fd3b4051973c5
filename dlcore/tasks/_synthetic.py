"""Synthetic sequence tasks with a controllable lag, a reversal/sorting "translation" task, and
MNIST-1D read as a sequence.

All generators are pure functions of a key (``jax.random``; no global RNG), so a dataset is fixed
by ``(key, sizes, parameters)``; :func:`synthetic_dataset` derives the three splits' keys with
``fold_in(key, 0|1|2)``.

* **Adding problem** (Hochreiter & Schmidhuber 1997; Le et al. 2015): ``x_t = (u_t, m_t)`` with
  ``u_t ~ U(0, 1)`` and exactly two markers ``m_t = 1``; the target is the sum of the two marked
  ``u``. Predicting the constant 1 gives MSE ``1/6 ≈ 0.167`` — the bar a model must beat. The
  ``lag`` fixes how many steps the first marked value must be remembered.
* **Copy task** (Arjovsky et al. 2016): ``L`` symbols, then ``lag − 1`` blanks and a delimiter,
  then ``L`` blanks; the model must output blanks until the delimiter's successors and then the
  ``L`` symbols. A memoryless model's best cross-entropy is ``L·log(K) / (2L + lag)``.
* **Translation** (reversal or sorting): source ``L`` symbols, target the reversed (or sorted)
  sequence; packed as ``x = [src | BOS, tgt[:-1]]`` for :class:`dlcore.nn.Seq2SeqTransformer`.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from dlcore.data import Dataset
from dlcore.errors import ConfigError, unknown_name

PAD_ID, BOS_ID = 0, 1
"""Reserved tokens of the translation task (symbols are ``2 .. num_symbols + 1``)."""

TRANSLATION_KINDS = ("reverse", "sort")


def adding_problem(key: jax.Array, num_examples: int, seq_len: int, lag: int | None = None):
    """The adding problem.

    Args:
      key: PRNG key.
      num_examples: ``N``.
      seq_len: ``T >= 2``.
      lag: ``None``: first marker uniform in the first half, second in the second half (the
        classic setup). An int ``1 <= lag <= T-1``: the first marker sits exactly at
        ``T − 1 − lag`` (so its value must be carried ``lag`` steps to the end) and the second
        uniformly after it.
    Returns:
      ``(x float32[N, T, 2], y float32[N])``.

    >>> import jax
    >>> x, y = adding_problem(jax.random.PRNGKey(0), 3, 10, lag=7)
    >>> x.shape, bool((x[:, :, 1].sum(1) == 2).all()), bool((x[:, 2, 1] == 1).all())
    ((3, 10, 2), True, True)
    """
    N, T = int(num_examples), int(seq_len)
    if T < 2 or N < 1:
        raise ConfigError(f"adding problem needs seq_len >= 2 and num_examples >= 1, got {T}, {N}")
    k_u, k_1, k_2 = jax.random.split(key, 3)
    u = jax.random.uniform(k_u, (N, T))
    if lag is None:
        half = T // 2
        p1 = jax.random.randint(k_1, (N,), 0, half)
        p2 = jax.random.randint(k_2, (N,), half, T)
    else:
        lag = int(lag)
        if not 1 <= lag <= T - 1:
            raise ConfigError(f"lag must be in [1, seq_len - 1] = [1, {T - 1}], got {lag}")
        p1 = jnp.full((N,), T - 1 - lag)
        p2 = jax.random.randint(k_2, (N,), T - lag, T)
    t = jnp.arange(T)[None, :]
    m = ((t == p1[:, None]) | (t == p2[:, None])).astype(jnp.float32)
    y = jnp.sum(u * m, axis=1)
    return jnp.stack([u, m], axis=-1), y


def copy_task(key: jax.Array, num_examples: int, copy_len: int = 5, lag: int = 10, num_symbols: int = 8):
    """The copy task: remember ``copy_len`` symbols for ``lag`` steps, then reproduce them.

    Tokens: ``0`` blank, ``1..K`` symbols (``K = num_symbols``), ``K + 1`` the delimiter
    ("start copying"). Sequence length ``T = 2·copy_len + lag``.

    Returns:
      ``(x int32[N, T], y int32[N, T])``; vocabulary size ``K + 2``.

    >>> import jax
    >>> x, y = copy_task(jax.random.PRNGKey(0), 2, copy_len=3, lag=4, num_symbols=5)
    >>> x.shape, bool((y[:, -3:] == x[:, :3]).all()), int(x[0, 3 + 4 - 1])
    ((2, 10), True, 6)
    """
    N, L, lag, K = int(num_examples), int(copy_len), int(lag), int(num_symbols)
    if N < 1 or L < 1 or lag < 1 or K < 1:
        raise ConfigError(f"copy task needs num_examples, copy_len, lag, num_symbols >= 1, got {N}, {L}, {lag}, {K}")
    sym = jax.random.randint(key, (N, L), 1, K + 1)
    blanks = jnp.zeros((N, lag - 1), jnp.int32)
    delim = jnp.full((N, 1), K + 1, jnp.int32)
    x = jnp.concatenate([sym, blanks, delim, jnp.zeros((N, L), jnp.int32)], axis=1)
    y = jnp.concatenate([jnp.zeros((N, L + lag), jnp.int32), sym], axis=1)
    return x.astype(jnp.int32), y.astype(jnp.int32)


def copy_task_baseline(copy_len: int, lag: int, num_symbols: int) -> float:
    """Cross-entropy per step of the best memoryless strategy: ``L·log K / (2L + lag)``.

    >>> round(copy_task_baseline(10, 100, 8), 3)
    0.173
    """
    return copy_len * math.log(num_symbols) / (2 * copy_len + lag)


def translation_task(key: jax.Array, num_examples: int, length: int = 8, num_symbols: int = 10, kind: str = "reverse"):
    """Source symbols and their reversal (or sorting), packed for teacher forcing.

    Tokens: ``PAD_ID = 0`` (unused here, reserved), ``BOS_ID = 1``, symbols ``2..num_symbols+1``;
    vocabulary size ``num_symbols + 2``.

    Returns:
      ``(x int32[N, 2·length], y int32[N, length])`` with ``x = [src | BOS, y[:-1]]``; chance
      token accuracy is ``1 / num_symbols``.

    >>> import jax
    >>> x, y = translation_task(jax.random.PRNGKey(0), 2, length=4, num_symbols=5)
    >>> bool((y == x[:, 3::-1]).all()), bool((x[:, 4] == BOS_ID).all()), bool((x[:, 5:] == y[:, :3]).all())
    (True, True, True)
    """
    if kind not in TRANSLATION_KINDS:
        raise unknown_name("translation kind", kind, TRANSLATION_KINDS)
    N, L, K = int(num_examples), int(length), int(num_symbols)
    if N < 1 or L < 1 or K < 2:
        raise ConfigError(f"translation task needs num_examples, length >= 1 and num_symbols >= 2, got {N}, {L}, {K}")
    src = jax.random.randint(key, (N, L), 2, K + 2).astype(jnp.int32)
    tgt = src[:, ::-1] if kind == "reverse" else jnp.sort(src, axis=1)
    tgt_in = jnp.concatenate([jnp.full((N, 1), BOS_ID, jnp.int32), tgt[:, :-1]], axis=1)
    return jnp.concatenate([src, tgt_in], axis=1), tgt


SYNTHETIC_TASKS: dict[str, tuple[Callable, Callable[[dict], int]]] = {
    "adding": (adding_problem, lambda kw: 0),
    "copy": (copy_task, lambda kw: int(kw.get("num_symbols", 8)) + 2),
    "reverse": (lambda key, n, **kw: translation_task(key, n, kind="reverse", **kw), lambda kw: int(kw.get("num_symbols", 10)) + 2),
    "sort": (lambda key, n, **kw: translation_task(key, n, kind="sort", **kw), lambda kw: int(kw.get("num_symbols", 10)) + 2),
}
"""Task name -> (generator ``(key, n, **params) -> (x, y)``, number of classes from the params)."""


def synthetic_dataset(name: str, key: jax.Array, num_train: int, num_val: int, num_test: int, **params) -> Dataset:
    """A :class:`dlcore.data.Dataset` of a synthetic task; split ``i`` uses ``fold_in(key, i)``.

    Args:
      name: ``"adding"``, ``"copy"``, ``"reverse"`` or ``"sort"``.
      key: e.g. ``dlcore.random.key(seed, "data")``.
      num_train, num_val, num_test: split sizes.
      **params: the generator's parameters (``seq_len``/``lag``, ``copy_len``/``lag``/
        ``num_symbols``, ``length``/``num_symbols``).
    Returns:
      the dataset; ``num_classes`` is the vocabulary size (0 for the regression task).

    >>> import jax
    >>> d = synthetic_dataset("copy", jax.random.PRNGKey(0), 8, 4, 4, copy_len=2, lag=3)
    >>> d.x_train.shape, d.num_classes
    ((8, 7), 10)
    """
    if name not in SYNTHETIC_TASKS:
        raise unknown_name("synthetic task", name, SYNTHETIC_TASKS)
    gen, classes = SYNTHETIC_TASKS[name]
    splits = [gen(jax.random.fold_in(key, i), int(n), **params) for i, n in enumerate((num_train, num_val, num_test))]
    (xtr, ytr), (xva, yva), (xte, yte) = splits
    return Dataset(xtr, ytr, xva, yva, xte, yte, num_classes=classes(params), name=name)


def mnist1d_sequences(data: Dataset) -> Dataset:
    """MNIST-1D as sequences: ``[N, 40]`` signals become ``[N, 40, 1]`` (40 steps of one feature).

    Use with ``RNNModel(cell="gru", head="many_to_one", num_outputs=10)`` (the GRU baseline,
    ~91% test accuracy in the MNIST-1D paper after long training).
    """
    if data.x_train.ndim != 2:
        raise ConfigError(f"mnist1d_sequences expects [N, length] signals, got x_train {data.x_train.shape}")
    return data.replace(
        x_train=data.x_train[..., None], x_val=data.x_val[..., None], x_test=data.x_test[..., None],
        name=f"{data.name}_seq",
    )
