"""Full-batch minimisation with one interface and the whole trajectory (for plots).

The lectures: "Newton, L-BFGS, GN, LM only if you can do full batch updates" — these are for
small problems (a quadratic, Rosenbrock, a curve fit, logistic regression), where every step
sees the whole objective. :func:`minimize` runs any of them for ``num_steps`` iterations as one
compiled ``lax.scan`` and returns the iterates and losses, so methods can be compared on a plot:

- ``"newton"``: θ ← θ − η (H + λI)⁻¹ ∇L with the exact Hessian (``jax.hessian``); ``damping`` λ,
  ``step_size`` η. On a quadratic with λ = 0, η = 1 it lands on the minimum in one step.
  ``damping = 0`` is the textbook (unsafeguarded) Newton step. ``damping > 0`` is *globalized*
  Newton with adaptive Levenberg–Marquardt damping: λ starts at ``damping``; a trial step is taken
  only if it passes the Armijo test ``f(θ − ηd) ≤ f(θ) − 10⁻⁴·η·∇Lᵀd`` (else λ ← 10λ and retry,
  at most 30 times, then θ stays), and λ ← λ/3 after each accepted step — so the loss never
  increases, even where H is indefinite, and λ → 0 near a minimum gives Newton's fast local rate.
- ``"newton_cg"``: the same step, the linear system solved by conjugate gradients
  (``jax.scipy.sparse.linalg.cg``) on Hessian-vector products — no Hessian is formed; globalized
  the same way when ``damping > 0``.
- ``"lbfgs"``: ``optax.lbfgs`` with its zoom line search (``memory_size``).
- ``"gauss_newton"`` / ``"levenberg_marquardt"``: for residual functions; see
  :func:`dlcore.optim.least_squares` (``fun`` must return the residual vector).
- any first-order name of :data:`dlcore.optim.OPTIMIZERS` (``"sgd"``, ``"momentum"``, ``"adam"``, …)
  with its hyperparameters as keyword arguments (``learning_rate=0.01, momentum=0.9``).

:func:`conjugate_gradient` solves a symmetric positive-definite linear system ``A x = b`` and keeps
its iterates (the lectures: "GD or SGD is not a way to solve a linear system").
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from dlcore.errors import ConfigError, ShapeError, unknown_name

SECOND_ORDER = ("newton", "newton_cg", "lbfgs", "gauss_newton", "levenberg_marquardt")


class MinimizeResult(NamedTuple):
    """The outcome of :func:`minimize` / :func:`least_squares`.

    Attributes:
      x: the final iterate (same pytree structure as ``x0``).
      fun: the objective at ``x`` (``½‖r‖²`` for least squares).
      xs: the iterates, ``x0`` first: a pytree like ``x0`` with a leading axis ``[T+1]``.
      losses: ``f32[T+1]`` the objective at each iterate.
      grad_norms: ``f32[T+1]`` ‖∇f‖₂ at each iterate.
      num_iters: ``i32[]`` iterations taken until ``tol`` was met (``T`` if it never was).
      converged: ``bool[]`` whether ``tol`` (or the solver's own test) was met.
      method: the method name.
    """

    x: Any
    fun: jax.Array
    xs: Any
    losses: jax.Array
    grad_norms: jax.Array
    num_iters: jax.Array
    converged: jax.Array
    method: str


def _flat(fun, x0):
    flat0, unravel = ravel_pytree(x0)
    if flat0.size == 0:
        raise ShapeError("x0 has no elements; pass the initial parameters to optimise")

    def f(v):
        return fun(unravel(v))

    out = jax.eval_shape(f, flat0)
    return flat0, unravel, f, out


# Adaptive damping (Levenberg–Marquardt on the Hessian, Nocedal & Wright §4 / Moré 1978): a trial
# step that does not lower f enough multiplies λ by _LM_UP and is retried; an accepted one divides λ
# by _LM_DOWN for the next iteration. After _LM_TRIES rejections the iterate stays put.
_LM_UP, _LM_DOWN, _LM_TRIES, _LM_MIN, _ARMIJO = 10.0, 3.0, 30, 1e-10, 1e-4


def _globalized(f, direction, step_size):
    """A damped-Newton step ``v − η d(λ)`` with ``d(λ) = (H + λI)⁻¹ g``, λ adapted until Armijo holds.

    ``direction(v, g, lam) -> d``. The state is the current λ (its start is the user's ``damping``).
    A step is taken only if ``f(v − η d) ≤ f(v) − c·η·gᵀd`` with ``gᵀd ≥ 0``, so the loss never rises.
    """
    grad = jax.grad(f)

    def step(v, lam):
        g = grad(v)
        f0 = f(v)
        prep = direction(v, g)

        def trial(lam):
            d = prep(lam)
            cand = v - step_size * d
            gd = g @ d
            fc = f(cand)
            ok = jnp.isfinite(fc) & jnp.all(jnp.isfinite(cand)) & (gd >= 0) & (fc <= f0 - _ARMIJO * step_size * gd)
            return cand, ok

        def body(c):
            lam, _, _, tries = c
            lam = jnp.maximum(lam * _LM_UP, _LM_MIN)
            cand, ok = trial(lam)
            return lam, cand, ok, tries + 1

        cand, ok = trial(lam)
        lam, cand, ok, _ = jax.lax.while_loop(lambda c: ~c[2] & (c[3] < _LM_TRIES), body, (lam, cand, ok, 0))
        v_new = jnp.where(ok, cand, v)
        return v_new, jnp.where(ok, jnp.maximum(lam / _LM_DOWN, _LM_MIN), lam)

    return step


def _newton_step(f, damping, step_size):
    grad = jax.grad(f)

    if damping > 0:
        def direction(v, g):
            h = jax.hessian(f)(v)  # formed once per iteration, re-solved for each trial λ
            eye = jnp.eye(v.size, dtype=v.dtype)
            return lambda lam: jnp.linalg.solve(h + lam * eye, g)

        return _globalized(f, direction, step_size), jnp.asarray(damping, jnp.float32)

    def step(v, _state):
        g = grad(v)
        h = jax.hessian(f)(v)
        return v - step_size * jnp.linalg.solve(h, g), _state

    return step, None


def _newton_cg_step(f, damping, step_size, cg_tol, cg_maxiter):
    grad = jax.grad(f)

    def solve(v, g, lam):
        def hvp(u):  # forward-over-reverse Hessian-vector product
            return jax.jvp(grad, (v,), (u,))[1] + lam * u

        return jax.scipy.sparse.linalg.cg(hvp, g, tol=cg_tol, maxiter=cg_maxiter)[0]

    if damping > 0:
        return (_globalized(f, lambda v, g: lambda lam: solve(v, g, lam), step_size),
                jnp.asarray(damping, jnp.float32))

    def step(v, _state):
        return v - step_size * solve(v, grad(v), 0.0), _state

    return step, None


def _lbfgs_step(f, flat0, memory_size):
    opt = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(f)

    def step(v, state):
        value, g = value_and_grad(v, state=state)
        upd, state = opt.update(g, state, v, value=value, grad=g, value_fn=f)
        return optax.apply_updates(v, upd), state

    return step, opt.init(flat0)


def _first_order_step(name, f, flat0, opts):
    from dlcore.optim._optimizers import _STATIC_OPTIONS, OPTIMIZERS, optimizer_fn

    schedule = opts.pop("schedule", None)
    static = {k: opts.pop(k) for k in list(opts) if k in _STATIC_OPTIONS and k not in ("clip_norm", "clip_value")}
    if "learning_rate" not in opts:
        raise ConfigError(f"minimize(method={name!r}) needs learning_rate=...")
    known = set(OPTIMIZERS[name][1]) | {"learning_rate", "weight_decay", "clip_norm", "clip_value"}
    bad = set(opts) - known
    if bad:
        raise ConfigError(f"minimize(method={name!r}) got unknown options {sorted(bad)}; valid: {sorted(known)}")
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in opts.items()}
    opt = optimizer_fn(name, schedule, **static)(hp)
    grad = jax.grad(f)

    def step(v, state):
        upd, state = opt.update(grad(v), state, v)
        return optax.apply_updates(v, upd), state

    return step, opt.init(flat0)


def minimize(fun: Callable, x0, method: str = "lbfgs", num_steps: int = 100, *, tol: float | None = None,
             **opts) -> MinimizeResult:
    """Minimise ``fun(x) -> scalar`` from ``x0`` for ``num_steps`` iterations; keep the trajectory.

    Args:
      fun: the objective (jittable); ``x`` is any pytree of float arrays.
      x0: the starting point.
      method: ``"newton"`` (opts ``damping=0``, ``step_size=1``; ``damping > 0`` adapts λ from that
        start and never lets the loss increase, see the module docstring), ``"newton_cg"`` (also ``cg_tol``,
        ``cg_maxiter``), ``"lbfgs"`` (``memory_size=10``), ``"gauss_newton"`` /
        ``"levenberg_marquardt"`` (``fun`` must return residuals; see :func:`least_squares`), or a
        first-order optimizer name with its hyperparameters (``learning_rate=...``, …).
      num_steps: iterations (the scan length; the trajectory has ``num_steps + 1`` points).
      tol: stop (freeze the iterate) once ‖∇f‖₂ ≤ tol; ``None`` runs all steps.
    Returns:
      :class:`MinimizeResult`.

    >>> import jax.numpy as jnp
    >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
    >>> r = minimize(f, jnp.zeros(2), method="newton", num_steps=1)
    >>> r.x.tolist(), r.losses.shape
    ([3.0, 3.0], (2,))
    """
    from dlcore.optim._optimizers import OPTIMIZERS

    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise ConfigError(f"num_steps must be a positive integer, got {num_steps!r}")
    valid = set(SECOND_ORDER) | set(OPTIMIZERS)
    if method not in valid:
        raise unknown_name("minimize method", method, valid)
    if method in ("gauss_newton", "levenberg_marquardt"):
        from dlcore.optim._least_squares import least_squares

        shapes = jax.tree.leaves(jax.eval_shape(fun, x0))
        if all(s.ndim == 0 for s in shapes):
            raise ConfigError(
                f"method={method!r} is for least squares: fun must return the residual vector r(x) "
                "(the objective is ½‖r‖²), but it returned a scalar; pass residuals, or use "
                "method='newton' / 'lbfgs' for a general scalar objective"
            )
        return least_squares(fun, x0, method=method, num_steps=num_steps, **opts)

    flat0, unravel, f, out = _flat(fun, x0)
    if out.shape != ():
        raise ShapeError(
            f"minimize needs a scalar objective, fun returned shape {out.shape}; sum it, or use "
            "least_squares(...) if it returns residuals"
        )
    opts = dict(opts)
    if opts.get("damping", 0.0) < 0 or opts.get("step_size", 1.0) <= 0:
        raise ConfigError(
            f"minimize: damping must be >= 0 and step_size > 0, got damping={opts.get('damping', 0.0)}, "
            f"step_size={opts.get('step_size', 1.0)}"
        )
    if method == "newton":
        step, st0 = _newton_step(f, opts.pop("damping", 0.0), opts.pop("step_size", 1.0))
    elif method == "newton_cg":
        step, st0 = _newton_cg_step(f, opts.pop("damping", 0.0), opts.pop("step_size", 1.0),
                                    opts.pop("cg_tol", 1e-6), opts.pop("cg_maxiter", None))
    elif method == "lbfgs":
        step, st0 = _lbfgs_step(f, flat0, int(opts.pop("memory_size", 10)))
    else:
        step, st0 = _first_order_step(method, f, flat0, opts)
        opts = {}
    if opts:
        raise ConfigError(f"minimize(method={method!r}) got unknown options {sorted(opts)}")
    grad = jax.grad(f)
    gtol = -1.0 if tol is None else float(tol)

    @jax.jit
    def run(v0, s0):
        def body(carry, _):
            v, s, done, iters = carry
            v_new, s_new = step(v, s)
            v = jnp.where(done, v, v_new)
            s = jax.tree.map(lambda a, b: jnp.where(done, a, b), s, s_new)
            iters = iters + (~done).astype(jnp.int32)
            done = done | (jnp.linalg.norm(grad(v)) <= gtol)
            return (v, s, done, iters), v

        done0 = jnp.linalg.norm(grad(v0)) <= gtol
        (v, _, done, iters), vs = jax.lax.scan(body, (v0, s0, done0, jnp.int32(0)), None, length=num_steps)
        vs = jnp.concatenate([v0[None], vs])
        losses = jax.vmap(f)(vs)
        gnorms = jax.vmap(lambda u: jnp.linalg.norm(grad(u)))(vs)
        return v, vs, losses, gnorms, iters, done

    v, vs, losses, gnorms, iters, done = run(flat0, st0)
    return MinimizeResult(
        x=unravel(v), fun=losses[-1], xs=jax.vmap(unravel)(vs), losses=losses, grad_norms=gnorms,
        num_iters=iters, converged=done, method=method,
    )


class CGResult(NamedTuple):
    """Conjugate-gradient iterates: ``x`` ``[n]``, ``xs`` ``[T+1, n]``, ``residual_norms`` ``[T+1]``
    (‖b − A x_k‖₂), ``num_iters`` until ``tol`` was met."""

    x: jax.Array
    xs: jax.Array
    residual_norms: jax.Array
    num_iters: jax.Array


def conjugate_gradient(A, b, x0=None, num_steps: int | None = None, tol: float = 1e-6) -> CGResult:
    """Solve ``A x = b`` (A symmetric positive definite) by conjugate gradients, keeping iterates.

    ``jax.scipy.sparse.linalg.cg`` gives only the solution; this is the textbook recurrence in a
    ``lax.scan`` so the path can be plotted. In exact arithmetic it converges in ``n`` steps.

    Args:
      A: an ``[n, n]`` matrix or a function ``v -> A v``.
      b: ``[n]``.
      x0: start (zeros by default).
      num_steps: iterations (default ``n``).
      tol: stop once ‖r‖ ≤ tol · ‖b‖.
    Returns:
      :class:`CGResult`.

    >>> import jax.numpy as jnp
    >>> r = conjugate_gradient(jnp.array([[4.0, 1.0], [1.0, 3.0]]), jnp.array([1.0, 2.0]))
    >>> [round(v, 4) for v in r.x.tolist()]
    [0.0909, 0.6364]
    """
    b = jnp.asarray(b)
    if b.ndim != 1:
        raise ShapeError(f"b must be a vector [n], got shape {b.shape}")
    if callable(A):
        matvec = A
    else:
        A = jnp.asarray(A)
        if A.shape != (b.size, b.size):
            raise ShapeError(f"A must be [{b.size}, {b.size}] to match b, got {A.shape}")
        matvec = lambda v: A @ v  # noqa: E731
    x0 = jnp.zeros_like(b) if x0 is None else jnp.asarray(x0, b.dtype)
    n = b.size if num_steps is None else int(num_steps)
    stop = tol * jnp.linalg.norm(b)

    @jax.jit
    def run(x0):
        r0 = b - matvec(x0)

        def body(carry, _):
            x, r, p, rr, iters = carry
            done = jnp.sqrt(rr) <= stop
            Ap = matvec(p)
            pAp = p @ Ap
            alpha = jnp.where(done | (pAp <= 0), 0.0, rr / jnp.where(pAp > 0, pAp, 1.0))
            x = x + alpha * p
            r = r - alpha * Ap
            rr_new = r @ r
            beta = jnp.where(rr > 0, rr_new / jnp.where(rr > 0, rr, 1.0), 0.0)
            p = r + beta * p
            return (x, r, p, rr_new, iters + (~done).astype(jnp.int32)), x

        (x, _, _, _, iters), xs = jax.lax.scan(body, (x0, r0, r0, r0 @ r0, jnp.int32(0)), None, length=n)
        xs = jnp.concatenate([x0[None], xs])
        res = jax.vmap(lambda v: jnp.linalg.norm(b - matvec(v)))(xs)
        return x, xs, res, iters

    return CGResult(*run(x0))
