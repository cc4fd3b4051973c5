"""Transfer learning: select parameter groups by path, freeze them, lower the body's learning rate,
replace the head (lecture 11: "if the dataset is big enough, train more layers with a low LR").

Parameters are addressed by their path in the params tree joined by ``/``, e.g.
``"stage_0_block_0/conv_0/kernel"`` or ``"head/bias"``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import jax
import optax

from dlcore.errors import ConfigError, ShapeError
from dlcore.optim import WrappedOptimizer

Group = str | Callable[[str, jax.Array], bool] | Sequence[Any]
"""A parameter group: ``"all"``, ``"kernels"``, ``"biases"``, a regular expression searched in the
path, a predicate ``(path, leaf) -> bool``, or a list of those (their union)."""

NAMED_GROUPS = ("all", "kernels", "biases", "none")


def _key_name(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def path_str(path) -> str:
    """``jax.tree_util`` key path → ``"a/b/kernel"``."""
    return "/".join(_key_name(k) for k in path)


def param_paths(params) -> list[str]:
    """All leaf paths of a params tree, in flattening order.

    >>> import jax.numpy as jnp
    >>> param_paths({"head": {"bias": jnp.zeros(2), "kernel": jnp.zeros((3, 2))}})
    ['head/bias', 'head/kernel']
    """
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def _matcher(group) -> Callable[[str, jax.Array], bool]:
    if callable(group):
        return group
    if isinstance(group, str):
        if group == "all":
            return lambda p, x: True
        if group == "none":
            return lambda p, x: False
        # "kernels": weight matrices and conv filters (ndim ≥ 2), as the default L1/L2 penalty;
        # biases, norm scales and PReLU slopes are exempt.
        if group == "kernels":
            return lambda p, x: getattr(x, "ndim", 0) >= 2
        if group == "biases":
            return lambda p, x: p.rsplit("/", 1)[-1] == "bias"
        try:
            rx = re.compile(group)
        except re.error as e:
            raise ConfigError(f"parameter group {group!r} is neither {NAMED_GROUPS} nor a valid regex: {e}") from None
        return lambda p, x: rx.search(p) is not None
    if isinstance(group, (list, tuple)):
        ms = [_matcher(g) for g in group]
        return lambda p, x: any(m(p, x) for m in ms)
    raise ConfigError(f"a parameter group must be a name {NAMED_GROUPS}, a regex, a predicate or a list; got {group!r}")


def param_mask(params, group: Group, *, allow_empty: bool = False):
    """A tree of bools like ``params``: ``True`` where the leaf belongs to ``group``.

    Args:
      params: a params tree.
      group: see :data:`Group`. A regex that matches nothing raises (a typo would otherwise
        silently select nothing) unless ``allow_empty``.
    Returns:
      a pytree of Python bools with the structure of ``params`` (an optax mask).

    >>> import jax.numpy as jnp
    >>> p = {"body": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "head": {"kernel": jnp.ones((2, 1))}}
    >>> param_mask(p, "kernels")
    {'body': {'bias': False, 'kernel': True}, 'head': {'kernel': True}}
    >>> param_mask(p, "^head/")["head"]
    {'kernel': True}
    """
    match = _matcher(group)
    mask = jax.tree_util.tree_map_with_path(lambda p, x: bool(match(path_str(p), x)), params)
    if not allow_empty and group != "none" and not any(jax.tree.leaves(mask)):
        raise ConfigError(
            f"parameter group {group!r} matches no parameter; paths are e.g. {param_paths(params)[:8]}"
        )
    return mask


def freeze(tx: optax.GradientTransformation, frozen: Group) -> optax.GradientTransformation:
    """Wrap an optimizer so that the parameters in ``frozen`` get zero updates (and no optimizer state).

    Uses ``optax.multi_transform`` with ``optax.set_to_zero()`` for the frozen labels. Weight decay
    applied by ``tx`` does not touch frozen parameters either. Batch-norm running statistics are
    not parameters: a frozen body in ``train=True`` mode still updates them.

    Args:
      tx: the optimizer for the trainable parameters.
      frozen: the group to freeze (see :data:`Group`), e.g. ``"^(?!head/)"`` (all but the head).
    Returns:
      an optax transformation over the whole params tree.

    >>> import jax.numpy as jnp
    >>> p = {"body": {"kernel": jnp.ones((2, 2))}, "head": {"kernel": jnp.ones((2, 1))}}
    >>> tx = freeze(optax.sgd(1.0), "^body/")
    >>> u, _ = tx.update(jax.tree.map(jnp.ones_like, p), tx.init(p), p)
    >>> float(u["body"]["kernel"].sum()), float(u["head"]["kernel"].sum())
    (0.0, -2.0)
    """
    return optax.multi_transform(
        {"train": tx, "frozen": optax.set_to_zero()},
        lambda params: jax.tree.map(lambda m: "frozen" if m else "train", param_mask(params, frozen)),
    )


def scale_lr(tx: optax.GradientTransformation, group: Group, factor) -> optax.GradientTransformation:
    """Multiply the updates of ``group`` by ``factor`` (e.g. 0.1: a lower learning rate for the body).

    For SGD, momentum, Adam(W), RMSProp the update is proportional to the learning rate, so scaling
    the update equals training that group with ``factor ×`` the learning rate (with one shared
    optimizer state). ``factor`` may be a traced scalar.

    >>> import jax.numpy as jnp
    >>> p = {"body": jnp.ones(2), "head": jnp.ones(2)}
    >>> tx = scale_lr(optax.sgd(1.0), "^body", 0.1)
    >>> u, _ = tx.update(jax.tree.map(jnp.ones_like, p), tx.init(p), p)
    >>> [round(float(u[k][0]), 6) for k in ("body", "head")]
    [-0.1, -1.0]
    """
    return optax.chain(
        tx,
        optax.masked(optax.scale(factor), lambda params: param_mask(params, group)),
    )


def fine_tune_fn(opt_fn: Callable, head: Group = "^head(/|$)", *, body: str = "train", body_lr_scale=0.1) -> Callable:
    """Turn ``opt_fn(hparams) -> tx`` (see :func:`dlcore.optim.optimizer_fn`) into a fine-tuning one.

    Args:
      opt_fn: the base optimizer function (a :class:`dlcore.train.Recipe` ``optimizer``).
      head: the group trained at the full learning rate (default: the module named ``head``).
      body: ``"freeze"`` (train only the head), ``"train"`` (body at ``body_lr_scale ×`` the
        learning rate; hparam ``body_lr_scale`` overrides it, so it can be swept).
    Returns:
      ``hparams -> optax.GradientTransformation``.
    """
    if body not in ("freeze", "train"):
        raise ConfigError(f"body must be 'freeze' or 'train', got {body!r}")
    not_head = lambda p, x: not _matcher(head)(p, x)  # noqa: E731

    def wrap(tx, hparams):
        if body == "freeze":
            return freeze(tx, not_head)
        return scale_lr(tx, not_head, hparams.get("body_lr_scale", body_lr_scale))

    return WrappedOptimizer(opt_fn, wrap)  # keeps the base's schedule (reduce-on-plateau too)


def transfer_params(pretrained, fresh, skip: Group = "^head(/|$)"):
    """Copy pretrained parameters into a new model's freshly initialised tree, except ``skip``.

    Replacing the head: build the model with the new ``num_classes``, ``init`` it, then take every
    parameter but the head from the pretrained tree. Shapes must agree on the copied leaves.

    Args:
      pretrained: the source tree (e.g. ``variables["params"]`` of the trained model).
      fresh: the target tree (defines the structure; its ``skip`` leaves are kept).
      skip: the group kept from ``fresh`` (default: the head).
    Returns:
      a tree like ``fresh``.

    >>> import jax.numpy as jnp
    >>> old = {"body": jnp.ones(2), "head": jnp.ones((2, 10))}
    >>> new = {"body": jnp.zeros(2), "head": jnp.zeros((2, 3))}
    >>> out = transfer_params(old, new)
    >>> float(out["body"][0]), out["head"].shape
    (1.0, (2, 3))
    """
    src = {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(pretrained)[0]}
    match = _matcher(skip)

    def pick(path, x):
        p = path_str(path)
        if match(p, x):
            return x
        if p not in src:
            raise ShapeError(f"pretrained parameters have no {p!r}; add it to `skip` to keep the fresh value")
        if src[p].shape != x.shape:
            raise ShapeError(
                f"parameter {p!r}: pretrained shape {src[p].shape} != new shape {x.shape}; "
                "add it to `skip` (e.g. a replaced head) or build the new model with matching widths"
            )
        return src[p]

    return jax.tree_util.tree_map_with_path(pick, fresh)
