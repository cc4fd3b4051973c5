"""Ensembles as one vmapped model, bagging by bootstrap weights, and Monte Carlo dropout.

Lecture 8: "train multiple models and average their results; if errors are uncorrelated the
expected error falls with the ensemble size. Bagging: k different datasets (or SGD/init noise)."
Lecture (midterm review): "in theory average the output probabilities — in practice a majority
vote; in theory bootstrap samples — in practice all the data."

:class:`Ensemble` holds ``M`` members' parameters (and batch-norm statistics) stacked on a leading
axis and runs them with ``jax.vmap``: one compiled program, members independent (their losses are
summed, so each member's gradient is its own). Member ids are *seeds*: member ``m`` initializes
exactly as a standalone run of seed ``s = member_ids[m]`` does (``dlcore.train.init_state(recipe,
seed=s, ...)``: keys ``dlcore.random.stream_key(root_key(s), "params")`` and ``"dropout"``), so its
initial parameters are bit-identical to that run's, whatever key the ensemble itself is initialized
with (so a seed sweep over one ensemble varies its data order and dropout, not its members: give each
run its own ``member_ids`` to vary those). Its dropout masks in training come from ``fold_in(key, s)`` of the ensemble's ``dropout`` key
(a lone run's masks depend on its step, which a module does not see). Identical ids give identical
members (bit for bit among themselves; outputs equal to the lone model up to ~1e-7, as a vmapped
matmul may round differently).

Bagging without copying data: member ``m``'s bootstrap resample (``n`` draws with replacement) is
stored as a multiplicity ``c_{m,i}`` per example, and member ``m``'s loss weights example ``i`` by
``c_{m,i}``. With full batches this *is* training on the resample; with uniform minibatches the
expected gradient is the resample's.

Monte Carlo dropout (Gal & Ghahramani): keep dropout on at prediction time, run ``T`` passes,
report the mean probability and its variance across passes.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore import random as drandom
from dlcore.errors import ConfigError, ShapeError, unknown_name

COMBINE = ("mean", "vote")


class Ensemble(nn.Module):
    """``M`` copies of ``model`` with separate parameters, BN statistics and dropout keys.

    Attributes:
      model: any Linen module called as ``model(x, train=...)``.
      num_members: ``M`` (ignored when ``member_ids`` is given).
      member_ids: one seed per member (default ``0..M-1``): member ``m`` starts from the parameters
        ``init_state(..., seed=member_ids[m])`` gives the lone model. Repeating an id repeats a
        member exactly.

    Call: ``ensemble.apply(variables, x, train=...)`` → member outputs ``[M, B, ...]``; combine them
    with :func:`ensemble_predict`. Parameters live in ``params["members"]`` with a leading ``M``
    axis (:func:`member_variables` extracts one). Use :func:`ensemble_loss` and
    :func:`ensemble_metrics` in a :class:`dlcore.train.Recipe`. Hyperparameters set on the recipe
    by name (e.g. ``dropout_rate``) reach ``model`` only if set on it before wrapping.

    >>> import jax, jax.numpy as jnp
    >>> from dlcore.nn import MLP
    >>> ens = Ensemble(MLP(widths=(8,), num_outputs=3), num_members=4)
    >>> v = ens.init(jax.random.PRNGKey(0), jnp.ones((2, 5)), train=False)
    >>> v["params"]["members"]["head"]["kernel"].shape, ens.apply(v, jnp.ones((2, 5)), train=False).shape
    ((4, 8, 3), (4, 2, 3))
    """

    model: nn.Module
    num_members: int = 5
    member_ids: Sequence[int] | None = None

    def ids(self) -> tuple[int, ...]:
        """The members' ids."""
        if self.member_ids is not None:
            ids = tuple(int(i) for i in self.member_ids)
            if not ids:
                raise ConfigError("Ensemble: member_ids is empty; give at least one id")
            return ids
        if self.num_members < 1:
            raise ConfigError(f"Ensemble: num_members must be ≥ 1, got {self.num_members}")
        return tuple(range(self.num_members))

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        ids = jnp.asarray(self.ids(), jnp.uint32)
        model = self.model.clone(parent=None)  # an unbound copy: we init/apply it functionally

        def init_members():
            # The keys of a standalone run of seed `id` (dlcore.train.init_state), not flax's make_rng.
            def one(i):
                keys = drandom.stream_keys(i, ("params", "dropout"))
                return dict(model.init({"params": keys["params"], "dropout": keys["dropout"]}, x, train=False))

            return jax.vmap(one)(ids)

        if self.is_initializing():
            full = init_members()
            params = self.param("members", lambda _: full["params"])
            cols = sorted(c for c in full if c != "params")
            state = {c: self.variable(c, "members", lambda c=c: full[c]).value for c in cols}
        else:
            params = self.param("members", lambda _: None)
            cols = sorted(c for c in self.variables if c != "params")
            state = {c: self.get_variable(c, "members") for c in cols}

        mutable = [c for c in cols if train and self.is_mutable_collection(c)]
        use_dropout = train and self.has_rng("dropout")
        dkeys = (jax.vmap(lambda i: jax.random.fold_in(self.make_rng("dropout"), i))(ids)
                 if use_dropout else jnp.zeros((ids.shape[0], 2), jnp.uint32))

        def run(p, s, k):
            rngs = {"dropout": k} if use_dropout else {}
            variables = {"params": p, **s}
            if mutable:
                out, upd = model.apply(variables, x, train=train, rngs=rngs, mutable=mutable)
                return out, dict(upd)
            return model.apply(variables, x, train=train, rngs=rngs), {}

        out, updates = jax.vmap(run)(params, state, dkeys)
        for c, v in updates.items():
            self.put_variable(c, "members", v)
        return out


def member_variables(variables, m: int) -> dict:
    """Member ``m``'s variables in the single model's layout (``{"params": ..., ...}``).

    Args:
      variables: an :class:`Ensemble`'s variables.
      m: member index.
    """
    return {c: jax.tree.map(lambda a: a[m], v["members"]) for c, v in variables.items() if "members" in v}


def stack_members(member_vars: Sequence[dict]) -> dict:
    """Stack single-model variables (same structure) into an :class:`Ensemble`'s variables.

    >>> import jax.numpy as jnp
    >>> v = stack_members([{"params": {"w": jnp.zeros(2)}}, {"params": {"w": jnp.ones(2)}}])
    >>> v["params"]["members"]["w"].shape
    (2, 2)
    """
    if not member_vars:
        raise ConfigError("stack_members needs at least one member")
    return {c: {"members": jax.tree.map(lambda *a: jnp.stack(a), *[dict(v)[c] for v in member_vars])}
            for c in dict(member_vars[0])}


def ensemble_predict(outputs_MxBxC: jax.Array, combine: str = "mean") -> jax.Array:
    """Combine member logits into class probabilities ``[B, C]``.

    Args:
      outputs_MxBxC: member logits.
      combine: ``"mean"`` — average of the members' softmax probabilities; ``"vote"`` — fraction
        of members voting for each class (argmax; ties go to the lower class index).
    Returns:
      ``[B, C]``, rows summing to 1.

    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[[2.0, 0.0]], [[0.0, 1.0]], [[3.0, 0.0]]])
    >>> ensemble_predict(logits, "vote").tolist()
    [[0.6666666865348816, 0.3333333432674408]]
    """
    if outputs_MxBxC.ndim < 3:
        raise ShapeError(f"expected member outputs [M, B, C], got shape {outputs_MxBxC.shape}")
    if combine == "mean":
        return jnp.mean(jax.nn.softmax(outputs_MxBxC, axis=-1), axis=0)
    if combine == "vote":
        c = outputs_MxBxC.shape[-1]
        return jnp.mean(jax.nn.one_hot(jnp.argmax(outputs_MxBxC, axis=-1), c, dtype=outputs_MxBxC.dtype), axis=0)
    raise unknown_name("ensemble combination", combine, COMBINE)


def _labels_weights(y: jax.Array, num_members: int):
    if y.ndim == 1:
        return y, None
    if y.ndim == 2 and y.shape[1] == num_members + 1:
        return y[:, 0], jnp.transpose(y[:, 1:]).astype(jnp.float32)
    raise ShapeError(
        f"ensemble labels must be [B] or [B, 1 + M] (label, then bootstrap counts; see bagged_dataset), "
        f"got {y.shape} for M={num_members}"
    )


def ensemble_loss(outputs_MxBxC: jax.Array, batch: dict, hparams) -> jax.Array:
    """Per-example loss of an ensemble: the *sum* over members of their cross-entropies ``[B]``.

    Summing keeps members independent (each gets its own gradient). With bagging labels
    ``[B, 1 + M]`` (see :func:`bagged_dataset`) member ``m``'s term is weighted by its bootstrap
    count of the example. ``hparams["label_smoothing"]`` applies as in the default loss.
    """
    m, _, c = outputs_MxBxC.shape
    labels, weights = _labels_weights(batch["y"], m)
    eps = jnp.asarray(hparams.get("label_smoothing", 0.0), jnp.float32)
    targets = jax.nn.one_hot(labels, c) * (1.0 - eps) + eps / c
    per_MxB = optax.softmax_cross_entropy(outputs_MxBxC, jnp.broadcast_to(targets, outputs_MxBxC.shape))
    if weights is not None:
        per_MxB = per_MxB * weights
    return jnp.sum(per_MxB, axis=0)


def ensemble_metrics(outputs_MxBxC: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Per-example ``accuracy`` of the averaged probabilities, ``vote_accuracy`` and the mean ``member_accuracy``."""
    m = outputs_MxBxC.shape[0]
    labels, _ = _labels_weights(batch["y"], m)
    hit = lambda scores: (jnp.argmax(scores, axis=-1) == labels).astype(jnp.float32)  # noqa: E731
    return {
        "accuracy": hit(ensemble_predict(outputs_MxBxC, "mean")),
        "vote_accuracy": hit(ensemble_predict(outputs_MxBxC, "vote")),
        "member_accuracy": jnp.mean(jax.vmap(hit)(outputs_MxBxC), axis=0),
    }


def bootstrap_indices(key: jax.Array, num_examples: int, num_members: int) -> jax.Array:
    """Each member's bootstrap resample: ``n`` indices drawn with replacement, ``[M, n]`` int32.

    Member ``m`` uses ``fold_in(key, m)``, so adding members leaves the first ones unchanged.

    >>> import jax
    >>> bootstrap_indices(jax.random.PRNGKey(0), 5, 3).shape
    (3, 5)
    """
    if num_examples < 1 or num_members < 1:
        raise ConfigError(f"bootstrap needs ≥ 1 example and ≥ 1 member, got {num_examples}, {num_members}")
    return jax.vmap(lambda m: jax.random.randint(jax.random.fold_in(key, m), (num_examples,), 0, num_examples))(
        jnp.arange(num_members)
    ).astype(jnp.int32)


def bootstrap_counts(key: jax.Array, num_examples: int, num_members: int) -> jax.Array:
    """Multiplicity of each example in each member's bootstrap resample, ``[M, n]`` int32 (rows sum to ``n``).

    About ``1 − 1/e ≈ 63%`` of the examples appear at least once in a resample.
    """
    idx = bootstrap_indices(key, num_examples, num_members)
    return jax.vmap(lambda i: jnp.bincount(i, length=num_examples))(idx).astype(jnp.int32)


def bagged_dataset(data, key: jax.Array, num_members: int):
    """A :class:`dlcore.data.Dataset` whose training labels carry each member's bootstrap counts.

    ``y_train`` becomes ``[N, 1 + M]``: the label, then member ``m``'s count of the example;
    validation and test labels are unchanged. Train an :class:`Ensemble` with
    :func:`ensemble_loss` / :func:`ensemble_metrics` on it.
    """
    counts = bootstrap_counts(key, int(data.y_train.shape[0]), num_members)
    y = jnp.concatenate([data.y_train[:, None].astype(jnp.int32), jnp.transpose(counts)], axis=1)
    return data.replace(y_train=y)


def mc_dropout_predict(model: nn.Module, variables, x: jax.Array, key: jax.Array, num_samples: int = 30):
    """Monte Carlo dropout: ``T`` stochastic passes with dropout on; mean and variance of the probabilities.

    The model is applied with ``train=True`` and dropout keys ``fold_in(key, t)``; updates of
    mutable collections are discarded (but a batch-norm layer in ``train=True`` normalizes with
    the batch's statistics — the lectures note dropout and BN rarely mix).

    Args:
      model: a Linen classifier called as ``model(x, train=...)``.
      variables: its variables.
      x: inputs ``[B, ...]``.
      key: PRNG key of the passes.
      num_samples: ``T`` (the lectures: 25–100).
    Returns:
      ``(mean_BxC, var_BxC)``: the predictive mean probability and its variance over passes.

    >>> import jax, jax.numpy as jnp
    >>> from dlcore.nn import MLP
    >>> m = MLP(widths=(8,), num_outputs=3, dropout_rate=0.0)
    >>> v = m.init(jax.random.PRNGKey(0), jnp.ones((2, 4)), train=False)
    >>> mean, var = mc_dropout_predict(m, v, jnp.ones((2, 4)), jax.random.PRNGKey(1), 5)
    >>> float(var.max())
    0.0
    """
    if num_samples < 1:
        raise ConfigError(f"num_samples must be ≥ 1, got {num_samples}")
    cols = [c for c in variables if c != "params"]

    def one(t):
        rngs = {"dropout": jax.random.fold_in(key, t)}
        if cols:
            out, _ = model.apply(variables, x, train=True, rngs=rngs, mutable=cols)
        else:
            out = model.apply(variables, x, train=True, rngs=rngs)
        return jax.nn.softmax(out, axis=-1)

    probs_TxBxC = jax.vmap(one)(jnp.arange(num_samples))
    # Variance shifted by the first pass: exact zero when all passes agree, and no cancellation.
    d = probs_TxBxC - probs_TxBxC[:1]
    var = jnp.maximum(jnp.mean(jnp.square(d), axis=0) - jnp.square(jnp.mean(d, axis=0)), 0.0)
    return jnp.mean(probs_TxBxC, axis=0), var
