"""Character-level language modelling: offline texts, vocabularies, windows, temperature sampling.

The lectures' example: vocabulary ``[h, e, l, o]``, training sequence ``"hello"`` — feed
``h, e, l, l`` (one-hot) and predict the next character ``e, l, l, o`` at every step. The same
data pipeline serves longer texts that are on every machine: the Zen of Python (the ``this``
module, decoded without printing it) or any standard-library module's source
(``"python:textwrap"``).

Sampling draws one character at a time from ``softmax(logits / τ)``: ``τ → 0`` is greedy
(arg-max), ``τ = 1`` the model's distribution, ``τ > 1`` flatter and more surprising. Every draw
is keyed (``fold_in(key, i)`` for the ``i``-th generated token), so a key fixes the sample.
"""

from __future__ import annotations

import ast
import codecs
import importlib.util
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import Dataset
from dlcore.errors import ConfigError, DataError, ShapeError

HELLO = "hello"
TEXTS = ("hello", "zen", "python:<module>")


class Vocab(NamedTuple):
    """A character vocabulary: ``chars[i]`` is token ``i``.

    >>> v = build_vocab("hello")
    >>> v.chars, v.encode("hell").tolist(), v.decode([1, 2, 2, 3])
    (('h', 'e', 'l', 'o'), [0, 1, 2, 2], 'ello')
    """

    chars: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``int32[len(text)]`` token ids; an unknown character raises :class:`DataError`."""
        index = {c: i for i, c in enumerate(self.chars)}
        missing = sorted(set(text) - set(index))
        if missing:
            raise DataError(f"characters {missing!r} are not in the vocabulary; build the vocabulary from this text")
        return np.asarray([index[c] for c in text], np.int32)

    def decode(self, ids) -> str:
        """The string of token ids ``ids``."""
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


def build_vocab(text: str, sort: bool = False) -> Vocab:
    """The characters of ``text`` in order of first appearance (the lectures' ``[h, e, l, o]``) or sorted."""
    if not text:
        raise DataError("cannot build a vocabulary from an empty text")
    chars = tuple(sorted(set(text))) if sort else tuple(dict.fromkeys(text))
    return Vocab(chars)


def _zen() -> str:
    # `import this` prints the Zen; read the module's rot13 string from its source instead.
    origin = importlib.util.find_spec("this").origin
    tree = ast.parse(open(origin, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "s" for t in node.targets):
            return codecs.decode(ast.literal_eval(node.value), "rot13")
    raise DataError(f"could not find the Zen of Python in {origin}")


def load_text(name: str = "zen") -> str:
    """A text that ships with Python (no download).

    Args:
      name: ``"hello"`` (the lectures' example), ``"zen"`` (the Zen of Python, ~860 characters)
        or ``"python:<module>"`` — the source of a pure-Python standard-library module, e.g.
        ``"python:textwrap"`` (~20k characters).
    Returns:
      the text.

    >>> load_text("zen").splitlines()[0]
    'The Zen of Python, by Tim Peters'
    """
    if name == "hello":
        return HELLO
    if name == "zen":
        return _zen()
    if isinstance(name, str) and name.startswith("python:"):
        module = name.split(":", 1)[1]
        spec = importlib.util.find_spec(module) if module else None
        origin = getattr(spec, "origin", None)
        if not origin or not origin.endswith(".py"):
            raise ConfigError(f"{name!r}: no pure-Python standard-library module {module!r}; try 'python:textwrap'")
        with open(origin, encoding="utf-8") as f:
            return f.read()
    raise ConfigError(f"unknown text {name!r}; valid choices: {', '.join(TEXTS)}")


def hello_example() -> tuple[np.ndarray, np.ndarray, Vocab]:
    """The lectures' example as one training sequence: ``x = "hell"``, ``y = "ello"``.

    Returns:
      ``(x int32[1, 4], y int32[1, 4], vocab [h, e, l, o])``.

    >>> x, y, v = hello_example()
    >>> v.decode(x), v.decode(y)
    ('hell', 'ello')
    """
    v = build_vocab(HELLO)
    ids = v.encode(HELLO)
    return ids[None, :-1], ids[None, 1:], v


def _windows(ids: np.ndarray, seq_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, len(ids) - seq_len, stride)
    idx = starts[:, None] + np.arange(seq_len)[None, :]
    return ids[idx], ids[idx + 1]


def char_lm_dataset(
    text: str,
    seq_len: int,
    *,
    stride: int = 1,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    vocab: Vocab | None = None,
) -> tuple[Dataset, Vocab]:
    """Next-character windows of a text: ``x = text[s : s+T]``, ``y = text[s+1 : s+T+1]``.

    The text is split *contiguously* (train = the first part, then validation, then test) before
    cutting windows, so overlapping windows never leak between splits.

    Args:
      text: the corpus (see :func:`load_text`).
      seq_len: ``T``, characters per window.
      stride: offset between consecutive windows (1 = every position).
      val_fraction, test_fraction: shares of the text for validation and test.
      vocab: default: built from the whole text (first-appearance order).
    Returns:
      ``(Dataset, Vocab)``; ``x_*``/``y_*`` are ``int32[N, T]`` and ``num_classes`` the vocabulary
      size.

    >>> data, v = char_lm_dataset(load_text("zen"), 16)
    >>> data.x_train.shape[1], v.decode(data.y_train[0, :3]) == v.decode(data.x_train[0, 1:4])
    (16, True)
    """
    seq_len, stride = int(seq_len), int(stride)
    if seq_len < 1 or stride < 1:
        raise ConfigError(f"seq_len and stride must be >= 1, got {seq_len}, {stride}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(f"val_fraction + test_fraction must be in [0, 1), got {val_fraction} + {test_fraction}")
    vocab = vocab or build_vocab(text)
    ids = vocab.encode(text)
    n = len(ids)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    parts = {"train": ids[: n - n_val - n_test], "val": ids[n - n_val - n_test : n - n_test], "test": ids[n - n_test :]}
    arrays = {}
    for split, part in parts.items():
        if len(part) <= seq_len:
            raise DataError(
                f"the {split} part of the text has {len(part)} characters, too few for windows of "
                f"seq_len={seq_len}; use a longer text, a shorter seq_len or a larger {split} fraction"
            )
        arrays[split] = _windows(part, seq_len, stride)
    put = lambda a: jnp.asarray(a, jnp.int32)  # noqa: E731
    data = Dataset(
        x_train=put(arrays["train"][0]), y_train=put(arrays["train"][1]),
        x_val=put(arrays["val"][0]), y_val=put(arrays["val"][1]),
        x_test=put(arrays["test"][0]), y_test=put(arrays["test"][1]),
        num_classes=vocab.size, name="char_lm",
    )
    return data, vocab


def sample_logits(key: jax.Array, logits_BxV: jax.Array, temperature=1.0) -> jax.Array:
    """One token per row from ``softmax(logits / τ)``; ``τ = 0`` is arg-max (greedy).

    Args:
      key: PRNG key.
      logits_BxV: unnormalised log-probabilities.
      temperature: ``τ >= 0`` (may be a traced scalar).
    Returns:
      ``int32[B]``.

    >>> import jax
    >>> sample_logits(jax.random.PRNGKey(0), jnp.array([[0.0, 5.0, 1.0]]), 0.0).tolist()
    [1]
    """
    if isinstance(temperature, (int, float)):
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if temperature == 0:
            return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    t = jnp.asarray(temperature, logits_BxV.dtype)
    safe_t = jnp.where(t > 0, t, jnp.ones_like(t))
    drawn = jax.random.categorical(key, logits_BxV / safe_t, axis=-1)
    return jnp.where(t > 0, drawn, jnp.argmax(logits_BxV, axis=-1)).astype(jnp.int32)


def sample_tokens(
    key: jax.Array,
    logits_fn: Callable[[jax.Array], jax.Array],
    prompt_BxP: jax.Array,
    num_tokens: int,
    temperature=1.0,
) -> jax.Array:
    """Extend prompts autoregressively with ``num_tokens`` sampled tokens; jittable.

    The model runs on a fixed buffer ``[B, P + num_tokens]`` each step and the logits at the last
    filled position are sampled — valid for *causal* models only (an RNN that is not bidirectional,
    :class:`dlcore.nn.TransformerLM`), whose outputs at ``t`` ignore the unfilled tail.

    Args:
      key: PRNG key; draw ``i`` uses ``fold_in(key, i)``.
      logits_fn: ``tokens int32[B, L] -> logits [B, L, V]``.
      prompt_BxP: ``P >= 1`` context tokens.
      num_tokens: tokens to generate.
      temperature: see :func:`sample_logits`.
    Returns:
      ``int32[B, P + num_tokens]`` (prompt followed by the samples).
    """
    prompt = jnp.asarray(prompt_BxP, jnp.int32)
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ShapeError(f"prompt must be token ids [batch, P] with P >= 1, got shape {prompt.shape}")
    if int(num_tokens) < 1:
        raise ConfigError(f"num_tokens must be >= 1, got {num_tokens}")
    B, P = prompt.shape
    buf = jnp.concatenate([prompt, jnp.zeros((B, int(num_tokens)), jnp.int32)], axis=1)

    def step(buf, i):
        pos = P + i
        logits = jax.lax.dynamic_index_in_dim(logits_fn(buf), pos - 1, axis=1, keepdims=False)
        tok = sample_logits(jax.random.fold_in(key, i), logits, temperature)
        return jax.lax.dynamic_update_index_in_dim(buf, tok, pos, axis=1), None

    buf, _ = jax.lax.scan(step, buf, jnp.arange(int(num_tokens)))
    return buf


def generate_text(
    key: jax.Array, model, variables, vocab: Vocab, prompt: str, num_chars: int, temperature=1.0
) -> str:
    """Sample ``num_chars`` characters after ``prompt`` from a causal character model.

    >>> import jax
    >>> from dlcore.nn import RNNModel
    >>> x, _, v = hello_example()
    >>> m = RNNModel(hidden_size=8, num_outputs=4, head="many_to_many", vocab_size=4)
    >>> vs = m.init(jax.random.PRNGKey(0), x)
    >>> len(generate_text(jax.random.PRNGKey(1), m, vs, v, "h", 4, temperature=1.0))
    5
    """
    prompt_ids = jnp.asarray(vocab.encode(prompt))[None]
    fn = jax.jit(lambda vs, k, p: sample_tokens(k, lambda t: model.apply(vs, t), p, num_chars, temperature))
    return vocab.decode(fn(variables, key, prompt_ids)[0])
