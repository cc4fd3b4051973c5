"""Nonlinear least squares: Gauss-Newton and Levenberg-Marquardt (optimistix), with the trajectory.

For an objective ``f(x) = ½‖r(x)‖²`` with residuals ``r``, the lectures' Gauss-Newton step solves
``JᵀJ δ = −Jᵀr`` (the Hessian approximated by JᵀJ) and Levenberg's damped version
``(JᵀJ + λI) δ = −Jᵀr``, adapting λ so that the loss decreases ("interpolation between
Gauss-Newton (small λ) and gradient descent (large λ)"). optimistix's ``GaussNewton`` and
``LevenbergMarquardt`` implement these (its LM is the trust-region form of the damped step);
:func:`least_squares` runs them through ``optimistix.least_squares`` and also steps the solver in a
``lax.scan`` to record the iterates for plotting.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from dlcore.errors import ConfigError, unknown_name
from dlcore.optim._minimize import MinimizeResult

LEAST_SQUARES_METHODS = ("gauss_newton", "levenberg_marquardt")
"""Method names; the solvers are ``optimistix.GaussNewton`` and ``optimistix.LevenbergMarquardt``."""


def _solver(method: str, rtol: float, atol: float):
    import optimistix as optx  # imported on use: it is slow to import and only needed here

    cls = {"gauss_newton": optx.GaussNewton, "levenberg_marquardt": optx.LevenbergMarquardt}[method]
    return cls(rtol=rtol, atol=atol)


def least_squares(
    residual_fn: Callable,
    x0,
    method: str = "levenberg_marquardt",
    num_steps: int = 100,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    trajectory: bool = True,
) -> MinimizeResult:
    """Minimise ``½‖residual_fn(x)‖²`` by Gauss-Newton or Levenberg-Marquardt.

    Args:
      residual_fn: ``x -> r`` with ``r`` a vector (or pytree) of residuals, e.g.
        ``lambda p: model(p, t) - y``. A scalar output is refused: that is a loss, not residuals.
      x0: the starting point (any pytree of float arrays).
      method: ``"gauss_newton"`` or ``"levenberg_marquardt"``.
      num_steps: the most solver steps (optimistix stops earlier on its Cauchy test with
        ``rtol``/``atol``).
      trajectory: also record the iterates (``xs``/``losses``; one entry per solver step, a
        rejected LM step repeats the previous point). ``False`` skips that second pass.
    Returns:
      :class:`dlcore.optim.MinimizeResult` whose ``fun``/``losses`` are ``½‖r‖²``.

    >>> import jax.numpy as jnp
    >>> t = jnp.linspace(0, 1, 20); y = 2.0 * jnp.exp(-1.5 * t)
    >>> r = least_squares(lambda p: p[0] * jnp.exp(-p[1] * t) - y, jnp.array([1.0, 1.0]))
    >>> [round(v, 3) for v in r.x.tolist()]
    [2.0, 1.5]
    """
    if method not in LEAST_SQUARES_METHODS:
        raise unknown_name("least-squares method", method, LEAST_SQUARES_METHODS)
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"num_steps must be a positive integer, got {num_steps!r}")
    out = jax.eval_shape(residual_fn, x0)
    if all(s.ndim == 0 for s in jax.tree.leaves(out)):
        raise ConfigError(
            f"{method} needs the residual vector r(x) (it minimises ½‖r‖²), but residual_fn returned a "
            "scalar — that is a loss, not residuals; return the per-point residuals instead, or use "
            "minimize(fun, x0, method='newton' or 'lbfgs') for a general objective"
        )
    import optimistix as optx

    solver = _solver(method, rtol, atol)
    fn = lambda y, args: residual_fn(y)  # noqa: E731  (optimistix passes args)

    def loss(y):
        return 0.5 * sum(jnp.sum(jnp.square(r)) for r in jax.tree.leaves(residual_fn(y)))

    def grad_norm(y):
        return jnp.linalg.norm(ravel_pytree(jax.grad(loss)(y))[0])

    @jax.jit
    def solve(y0):
        sol = optx.least_squares(fn, solver, y0, max_steps=num_steps, throw=False)
        return sol.value, sol.result == optx.RESULTS.successful, sol.stats["num_steps"]

    x, ok, steps = solve(x0)

    xs = jax.tree.map(lambda a: a[None], x)
    if trajectory:
        xs = _trajectory(solver, residual_fn, x0, num_steps)
    losses = jax.jit(jax.vmap(loss))(xs)
    gnorms = jax.jit(jax.vmap(grad_norm))(xs)
    return MinimizeResult(
        x=x, fun=jax.jit(loss)(x), xs=xs, losses=losses, grad_norms=gnorms,
        num_iters=steps, converged=ok, method=method,
    )


def _trajectory(solver, residual_fn, x0, num_steps: int):
    """Iterates of ``solver`` from its ``init``/``step``/``terminate`` interface, ``[num_steps+1]``.

    optimistix's ``step`` returns the last *accepted* point, one step behind the point it is
    evaluating, so ``num_steps + 1`` steps give ``x0`` followed by ``num_steps`` iterates.
    """
    fn = lambda y, args: (residual_fn(y), None)  # noqa: E731  (the solver interface has aux)
    f_struct = jax.eval_shape(residual_fn, x0)
    tags, options = frozenset(), {}

    @jax.jit
    def run(y0):
        import equinox as eqx

        # The solver state holds static parts (a jaxpr of the Jacobian); carry only its arrays.
        state = solver.init(fn, y0, None, options, f_struct, None, tags)
        dyn0, static = eqx.partition(state, eqx.is_array)

        def body(carry, _):
            y, dyn, rec, done = carry
            y, state, _ = solver.step(fn, y, None, options, eqx.combine(dyn, static), tags)
            rec = jax.tree.map(lambda a, b: jnp.where(done, a, b), rec, y)  # frozen once terminated
            terminate, _ = solver.terminate(fn, y, None, options, state, tags)
            return (y, eqx.partition(state, eqx.is_array)[0], rec, done | terminate), rec

        _, recs = jax.lax.scan(body, (y0, dyn0, y0, jnp.array(False)), None, length=num_steps + 1)
        return recs

    return run(x0)
