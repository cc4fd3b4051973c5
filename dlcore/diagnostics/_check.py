"""The lectures' neural-network debugging recipe, executable: ``check_recipe`` / ``dlcore check``.

"There is no way to unit-test training", so the lectures give a recipe instead (deck 000): fix the
seeds; check the initial loss (≈ log C for C classes); overfit one example, then one batch, to
(near) zero loss; find a learning rate that makes the loss drop within ~100 iterations; track the
curves. dlcore adds the checks the lectures' list of common mistakes suggests: gradients against
finite differences, parameters that never receive a gradient, and a ``train`` flag that is really
wired to dropout/batch norm.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data import Dataset
from dlcore.losses import mean_loss
from dlcore.manifest import params_sha256
from dlcore.nn import deterministic
from dlcore.train import Recipe, fit, init_state, make_train_step

# Regularizers are switched off for the overfitting checks (the lectures: overfit *without* them).
_REGULARIZERS = ("dropout_rate", "weight_decay", "l1", "l2", "label_smoothing")
_SOFTMAX_HINT = "outputs already look like probabilities: softmax applied before a logits loss?"


class CheckResult(NamedTuple):
    """One check: ``passed`` is True/False, or None when it does not apply to this model."""

    name: str
    passed: bool | None
    detail: str
    hint: str = ""


@dataclasses.dataclass
class CheckReport:
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.results)

    def __getitem__(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    def __str__(self) -> str:
        lines = []
        for r in self.results:
            mark = {True: "PASS", False: "FAIL", None: "skip"}[r.passed]
            lines.append(f"[{mark}] {r.name:<24} {r.detail}")
            if r.passed is False and r.hint:
                lines.append(f"       usual cause: {r.hint}")
        n_fail = sum(r.passed is False for r in self.results)
        lines.append("all checks passed" if n_fail == 0 else f"{n_fail} check(s) failed")
        return "\n".join(lines)


def _looks_like_probabilities(out) -> bool:
    out = np.asarray(out)
    return bool(out.ndim == 2 and out.min() >= 0 and out.max() <= 1 and np.allclose(out.sum(-1), 1, atol=1e-3))


def _train_on(recipe, state, batch, steps, no_stochastic_layers=False):
    step = jax.jit(make_train_step(recipe))

    @jax.jit
    def many(s):
        return jax.lax.scan(lambda s, _: step(s, batch), s, None, length=steps)

    # Traced (and so intercepted) here, on the first call of a fresh jitted function.
    with deterministic() if no_stochastic_layers else contextlib.nullcontext():
        s, m = many(state)
    return s, np.asarray(m["loss"])


def _loss_fn(recipe, state, batch):
    def f(params):
        out = recipe.bind(state.hparams).apply({"params": params, **state.model_state}, batch["x"], train=False)
        return mean_loss(recipe.loss(out, batch, state.hparams))

    return f


def check_recipe(
    recipe: Recipe,
    data: Dataset,
    *,
    hparams: dict,
    batch_size: int,
    seed: int = 0,
    steps: int = 100,
    overfit_steps: int = 300,
    fd_directions: int = 3,
) -> CheckReport:
    """Run the debugging recipe on a recipe and dataset; returns a pass/fail :class:`CheckReport`.

    Args:
      recipe, data: what ``fit`` would train.
      hparams: the hyperparameters under test (the learning rate in particular).
      batch_size: the training batch size.
      seed: the seed of every run in the recipe.
      steps: the budget for "the loss drops" (the lectures' 100 iterations).
      overfit_steps: the budget for overfitting one example and one batch.
      fd_directions: random directions for the finite-difference gradient check.

    >>> report = check_recipe(recipe, data, hparams={"learning_rate": 1e-2}, batch_size=100)  # doctest: +SKIP
    >>> print(report)                                                                          # doctest: +SKIP
    """
    results: list[CheckResult] = []
    x1 = data.x_train[:1]
    C = data.num_classes
    batch = {"x": data.x_train[:batch_size], "y": data.y_train[:batch_size]}
    state = init_state(recipe, seed, hparams, x1)
    out0 = recipe.bind(state.hparams).apply({"params": state.params, **state.model_state}, batch["x"], train=False)
    probs_out = _looks_like_probabilities(out0)

    # 1. Fixed seeds reproduce: two short runs, identical bits.
    kw = dict(hparams=hparams, num_steps=20, batch_size=batch_size, eval_every=20, progress=False, evaluate_test=False)
    h1 = params_sha256(fit(recipe, data, seed, **kw).state.params)
    h2 = params_sha256(fit(recipe, data, seed, **kw).state.params)
    results.append(CheckResult(
        "seeds reproduce", h1 == h2, f"two 20-step runs: {h1[:12]} vs {h2[:12]}",
        "hidden randomness: a global RNG, a key reused outside the state, or a nondeterministic op"))

    # 2. Initial loss ≈ log(C).
    loss0 = float(mean_loss(recipe.loss(out0, batch, state.hparams)))
    tol = max(0.3, 0.15 * math.log(C))
    results.append(CheckResult(
        "initial loss ≈ log(C)", abs(loss0 - math.log(C)) < tol, f"{loss0:.3f} vs log({C}) = {math.log(C):.3f}",
        _SOFTMAX_HINT if probs_out else
        "output layer initialised too large, labels outside [0, C), or a loss that is not mean cross-entropy"))

    # 3-4. Overfit one example, then one batch, without regularization: regularizer hyperparameters
    # zeroed, and every stochastic layer (dropout fixed inside the model too) switched off through
    # its deterministic mode; batch norm keeps training mode.
    plain_hp = {k: (0.0 if k in _REGULARIZERS else v) for k, v in hparams.items()}
    plain = init_state(recipe, seed, plain_hp, x1)
    overfit_hint = (_SOFTMAX_HINT if probs_out else
                    "too low a learning rate, a bug in the loss/labels, or a model too small to memorise")
    for name, b, target in (("overfit one example", {k: v[:1] for k, v in batch.items()}, 0.05),
                            ("overfit one batch", batch, 0.1)):
        _, losses = _train_on(recipe, plain, b, overfit_steps, no_stochastic_layers=True)
        final = float(np.mean(losses[-5:]))
        results.append(CheckResult(name, final < target, f"loss {losses[0]:.3f} -> {final:.4f} in {overfit_steps} steps "
                                   f"(target < {target})", overfit_hint))

    # 5. The loss drops within `steps` iterations at this learning rate; 6. and beats chance.
    res = fit(recipe, data, seed, hparams=hparams, num_steps=steps, batch_size=batch_size, eval_every=steps,
              progress=False, evaluate_test=False)
    lo = np.asarray(res.history["train/loss"])
    k = max(1, steps // 10)
    first, last = float(lo[:k].mean()), float(lo[-k:].mean())
    results.append(CheckResult(
        f"loss drops in {steps} steps", last < 0.9 * first, f"{first:.3f} -> {last:.3f}",
        "learning rate too low (nothing moves) or too high (loss jumps up); try 3x steps of a log grid"))
    yv = np.asarray(data.y_val)
    chance = float(np.bincount(yv, minlength=C).max() / len(yv))
    acc = float(res.final.get("val/accuracy", np.nan))
    results.append(CheckResult(
        "learns beyond chance", acc > chance + 0.05, f"val accuracy {acc:.3f} vs majority class {chance:.3f}",
        "data/label misalignment: labels shuffled or ordered differently from the inputs"))

    # 7. Gradients vs central finite differences (float64, eval mode) along random directions.
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, t)
        s64 = state.replace(params=to64(state.params), model_state=to64(state.model_state),
                            hparams=to64(state.hparams))
        b64 = {"x": jnp.asarray(batch["x"], jnp.float64), "y": batch["y"]}
        f = jax.jit(_loss_fn(recipe, s64, b64))
        g = jax.grad(f)(s64.params)
        worst, eps = 0.0, 1e-7  # tiny steps in float64: ReLU kinks are almost never crossed
        for i in range(fd_directions):
            leaves, tdef = jax.tree.flatten(s64.params)
            keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), i), len(leaves))
            v = jax.tree.unflatten(tdef, [jax.random.normal(kk, l.shape, jnp.float64) for kk, l in zip(keys, leaves)])
            plus = jax.tree.map(lambda p, d: p + eps * d, s64.params, v)
            minus = jax.tree.map(lambda p, d: p - eps * d, s64.params, v)
            fd = (float(f(plus)) - float(f(minus))) / (2 * eps)
            an = float(sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(v))))
            worst = max(worst, abs(fd - an) / max(abs(fd), abs(an), 1e-8))
    results.append(CheckResult(
        "gradients = finite diff.", worst < 1e-3, f"worst relative error {worst:.1e} over {fd_directions} directions",
        "a custom op with a wrong gradient, or a non-differentiable step (argmax, rounding) in the loss"))

    # 8. Every parameter receives a gradient.
    grads = jax.grad(_loss_fn(recipe, state, batch))(state.params)
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    dead = [jax.tree_util.keystr(p) for p, gl in flat if not np.any(np.asarray(gl))]
    results.append(CheckResult(
        "every parameter learns", not dead, "all parameters get a gradient" if not dead else f"no gradient: {', '.join(dead)}",
        "a layer left out of the gradient path (output unused, stop_gradient, or a branch never taken)"))

    # 9. Train and eval modes differ where dropout or batch norm exist.
    has_bn = bool(state.model_state)
    rate = hparams.get("dropout_rate", getattr(recipe.model, "dropout_rate", 0.0))
    has_dropout = not isinstance(rate, (int, float)) or rate > 0
    if not (has_bn or has_dropout):
        results.append(CheckResult("train/eval modes differ", None, "no dropout or batch norm in this model"))
    else:
        variables = {"params": state.params, **state.model_state}
        model = recipe.bind(state.hparams)
        ev = model.apply(variables, batch["x"], train=False)
        tr = model.apply(variables, batch["x"], train=True, rngs={"dropout": jax.random.PRNGKey(seed)},
                         mutable=list(state.model_state) if has_bn else False)
        tr = tr[0] if has_bn else tr
        differ = not np.allclose(np.asarray(ev), np.asarray(tr))
        results.append(CheckResult(
            "train/eval modes differ", differ, "outputs differ between train and eval" if differ else
            "train and eval outputs are identical", "the `train` flag is not passed down to dropout/batch norm"))
    return CheckReport(results)
