"""Linear regression: closed-form least squares, ridge, gradient descent, and the MLE view.

Three closed-form solvers of ``min_θ ‖Xθ − y‖² + λ‖θ‖²`` (``method=``), none chosen silently:

=============  =============================================  ====================================
``method``     how                                            use it when
=============  =============================================  ====================================
``"lstsq"``    SVD (``jnp.linalg.lstsq``): the minimum-norm   the default: any shape, any rank
(default)      solution, what ``numpy.linalg.lstsq``          (collinear features, N < D);
               returns.                                       error ≈ κ(X)·ε.
``"qr"``       Householder QR of ``[X | y]``:                 X has full column rank (N ≥ D) and
               ``θ = R⁻¹ Qᵀy`` (Q never formed).              speed matters; error ≈ κ(X)·ε.
``"normal"``   the lectures' normal equations                 N ≫ D, standardized, well-
               ``(XᵀX + λI) θ = Xᵀy``, solved by Cholesky     conditioned features: the cheapest
               (never by forming the inverse).                path (one D×D Gram matrix), but
                                                              error ≈ κ(X)²·ε: it loses twice
                                                              the digits.
=============  =============================================  ====================================

Ridge (``ridge=λ > 0``) is solved by the ``lstsq``/``qr`` paths as the stacked least-squares
problem ``[X; √λ I] θ ≈ [y; 0]`` (same minimizer as ``(XᵀX + λI)θ = Xᵀy``, without squaring κ).
With ``fit_intercept=True`` (:func:`fit_linear`), X and y are centred first and the intercept is
``ȳ − x̄·w``: identical to a column of ones for plain least squares, and it leaves the intercept
unpenalized for ridge (as scikit-learn's ``Ridge`` does).

MLE view (lecture 2): with ``y_i = x_i θ + ε_i``, ``ε_i ~ N(0, σ²)`` i.i.d., maximizing
``Σ log N(y_i | x_i θ, σ²)`` over θ is least squares, and over σ² gives
``σ²_ML = (1/n) Σ (y_i − x_i θ)²`` (biased; ``ddof=p`` gives the unbiased ``1/(n−p)`` version).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from dlcore.errors import ConfigError, ShapeError, unknown_name

METHODS = ("lstsq", "qr", "normal")


class LinearModel(NamedTuple):
    """A fitted linear model ``ŷ = x·weights + bias`` with its Gaussian noise variance.

    Attributes:
      weights: ``[D]`` (one target) or ``[D, T]`` (T targets).
      bias: ``[]`` or ``[T]`` (zero when fitted without intercept).
      noise_var: ``[]`` or ``[T]``: the MLE ``σ² = mean(residual²)`` on the training data.
    """

    weights: jax.Array
    bias: jax.Array
    noise_var: jax.Array


def check_xy(x_NxD, y_N, *, name: str = "x") -> None:
    """Raise :class:`ShapeError` unless ``x`` is ``[N, D]`` and ``y`` has the same leading N.

    Shapes are static, so this works under ``jit`` too.
    """
    if jnp.ndim(x_NxD) != 2:
        raise ShapeError(
            f"{name} must be a 2-D [N, D] array, got shape {jnp.shape(x_NxD)}; "
            "flatten inputs with x.reshape(len(x), -1)"
        )
    if jnp.shape(y_N)[:1] != jnp.shape(x_NxD)[:1]:
        raise ShapeError(
            f"{name} has {jnp.shape(x_NxD)[0]} examples but y has shape {jnp.shape(y_N)}; "
            "pass one target row per input row"
        )


def _as_float(x_NxD, y_N):
    check_xy(x_NxD, y_N)
    x = jnp.asarray(x_NxD)
    # Integer inputs become float32 (float64 stays float64 when x64 is enabled).
    x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    return x, jnp.asarray(y_N).astype(x.dtype)


def _is_zero(v) -> bool:
    # Only a concrete Python/NumPy zero skips the ridge rows; a traced ridge always stacks them.
    return isinstance(v, (int, float)) and v == 0


def least_squares(x_NxD, y_N, *, method: str = "lstsq", ridge=0.0) -> jax.Array:
    """Solve ``min_θ ‖Xθ − y‖² + ridge·‖θ‖²`` in closed form on the design matrix as given.

    No intercept is added: put a column of ones in ``x`` (:func:`add_bias_column`) or use
    :func:`fit_linear`. See the module docstring for which ``method`` to use when.

    Args:
      x_NxD: design matrix.
      y_N: targets ``[N]`` or ``[N, T]``.
      method: ``"lstsq"`` (SVD, min-norm, = ``numpy.linalg.lstsq``), ``"qr"`` or ``"normal"``.
      ridge: λ ≥ 0; may be a traced scalar (vmap over it).
    Returns:
      θ, ``[D]`` or ``[D, T]``.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1., 0.], [1., 1.], [1., 2.]])
    >>> least_squares(x, jnp.array([1., 3., 5.])).round(4).tolist()
    [1.0, 2.0]
    """
    if method not in METHODS:
        raise unknown_name("least-squares method", method, METHODS)
    x, y = _as_float(x_NxD, y_N)
    n, d = x.shape
    if method == "normal":
        gram = x.T @ x + jnp.asarray(ridge, x.dtype) * jnp.eye(d, dtype=x.dtype)
        # Cholesky of the (symmetric positive definite) Gram matrix: never form its inverse.
        return jsl.cho_solve(jsl.cho_factor(gram), x.T @ y)
    if not _is_zero(ridge):
        # [X; √λ I] θ ≈ [y; 0] has the ridge minimizer and keeps κ(X) instead of κ(X)².
        x = jnp.concatenate([x, jnp.sqrt(jnp.asarray(ridge, x.dtype)) * jnp.eye(d, dtype=x.dtype)])
        y = jnp.concatenate([y, jnp.zeros((d,) + y.shape[1:], y.dtype)])
        n = n + d
    if method == "qr":
        if n < d:
            raise ConfigError(
                f"method='qr' needs at least as many rows as columns, got X of shape {x.shape}; "
                "use method='lstsq' (minimum-norm solution) or ridge > 0"
            )
        # R of the stacked [X | y] holds Qᵀy in its last column(s): Q is never formed.
        y2 = y[:, None] if y.ndim == 1 else y
        r = jnp.linalg.qr(jnp.concatenate([x, y2], axis=1), mode="r")
        theta = jsl.solve_triangular(r[:d, :d], r[:d, d:], lower=False)
        return theta[:, 0] if y.ndim == 1 else theta
    return jnp.linalg.lstsq(x, y, rcond=None)[0]


def add_bias_column(x_NxD) -> jax.Array:
    """Prepend a column of ones (the lectures' ``θ_0`` bias column): ``[N, D] -> [N, D + 1]``."""
    x = jnp.asarray(x_NxD)
    return jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), x], axis=1)


def noise_variance(residuals_N, ddof: int = 0) -> jax.Array:
    """Gaussian noise variance from residuals: ``Σ r² / (N − ddof)`` (``ddof=0``: the MLE).

    Returns ``[]`` for ``[N]`` residuals, ``[T]`` for ``[N, T]``.
    """
    r = jnp.asarray(residuals_N)
    return jnp.sum(r * r, axis=0) / (r.shape[0] - ddof)


def predict_linear(model: LinearModel, x_NxD) -> jax.Array:
    """``ŷ = x·w + b``: ``[N]`` or ``[N, T]``."""
    out = jnp.asarray(x_NxD) @ model.weights
    return out + (model.bias[None] if jnp.ndim(out) == 2 else model.bias)


def _center(x, y, fit_intercept: bool):
    if not fit_intercept:
        return x, y, jnp.zeros(x.shape[1], x.dtype), jnp.zeros(y.shape[1:], y.dtype)
    x_mean, y_mean = jnp.mean(x, axis=0), jnp.mean(y, axis=0)
    return x - x_mean[None], y - y_mean[None], x_mean, y_mean


def fit_linear(x_NxD, y_N, *, method: str = "lstsq", ridge=0.0, fit_intercept: bool = True) -> LinearModel:
    """Closed-form (ridge) linear regression with an unpenalized intercept and the MLE noise variance.

    Args:
      x_NxD: inputs.
      y_N: targets ``[N]`` or ``[N, T]``.
      method: see :func:`least_squares`.
      ridge: λ ≥ 0 on the weights (not the intercept); objective ``‖Xw + b − y‖² + λ‖w‖²``
        (scikit-learn's ``Ridge(alpha=λ)``).
      fit_intercept: centre X and y and recover ``b = ȳ − x̄·w``.
    Returns:
      :class:`LinearModel`.

    >>> import jax.numpy as jnp
    >>> m = fit_linear(jnp.array([[0.], [1.], [2.]]), jnp.array([1., 3., 5.]))
    >>> round(float(m.weights[0]), 4), round(float(m.bias), 4)
    (2.0, 1.0)
    """
    x, y = _as_float(x_NxD, y_N)
    xc, yc, x_mean, y_mean = _center(x, y, fit_intercept)
    w = least_squares(xc, yc, method=method, ridge=ridge)
    bias = y_mean - x_mean @ w
    model = LinearModel(w, bias, jnp.zeros_like(bias))
    return model._replace(noise_var=noise_variance(y - predict_linear(model, x)))


def gaussian_log_likelihood(model: LinearModel, x_NxD, y_N, noise_var=None) -> jax.Array:
    """``Σ_i log N(y_i | ŷ_i, σ²)`` (summed over examples and targets); σ² defaults to the model's.

    Its maximizer over (w, b) is the least-squares fit and over σ² the mean squared residual: the
    lectures' "MLE = least squares under Gaussian noise", checkable with ``jax.grad``.
    """
    var = model.noise_var if noise_var is None else jnp.asarray(noise_var)
    r = jnp.asarray(y_N) - predict_linear(model, x_NxD)
    var_b = var[None] if r.ndim == 2 else var
    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi * var_b) - 0.5 * r * r / var_b)


def fit_linear_gd(
    x_NxD,
    y_N,
    *,
    learning_rate,
    num_steps: int,
    ridge=0.0,
    fit_intercept: bool = True,
) -> tuple[LinearModel, jax.Array]:
    """The same linear model trained by full-batch gradient descent (one ``lax.scan``).

    Minimizes ``J(w, b) = (1/N)‖Xw + b − y‖² + (λ/N)‖w‖²``: the closed-form objective divided by
    N, so the minimizer is :func:`fit_linear`'s. Starts from zeros (a convex problem: no key needed).
    ``learning_rate`` and ``ridge`` may be traced (vmap over them); ``num_steps`` is static.
    Converges for ``learning_rate < 1 / λ_max(XᵀX/N + λ/N)``; standardize inputs first.

    Returns:
      ``(model, loss_history [num_steps])`` where ``loss_history[t]`` is ``J`` before step ``t``.

    >>> import jax.numpy as jnp
    >>> m, loss = fit_linear_gd(jnp.array([[0.], [1.], [2.]]), jnp.array([1., 3., 5.]),
    ...                         learning_rate=0.3, num_steps=300)
    >>> round(float(m.weights[0]), 3), round(float(m.bias), 3)
    (2.0, 1.0)
    """
    x, y = _as_float(x_NxD, y_N)
    n = x.shape[0]
    lr = jnp.asarray(learning_rate, x.dtype)
    lam = jnp.asarray(ridge, x.dtype)
    use_b = jnp.asarray(float(fit_intercept), x.dtype)

    def loss_fn(params):
        w, b = params
        pred = x @ w + (b[None] if y.ndim == 2 else b)
        r = pred - y
        return (jnp.sum(r * r) + lam * jnp.sum(w * w)) / n

    def step(params, _):
        loss, g = jax.value_and_grad(loss_fn)(params)
        w, b = params
        gw, gb = g
        # The intercept stays at 0 without fit_intercept (a multiplicative mask keeps one program).
        return (w - lr * gw, b - lr * use_b * gb), loss

    init = (jnp.zeros((x.shape[1],) + y.shape[1:], x.dtype), jnp.zeros(y.shape[1:], x.dtype))
    (w, b), losses = jax.lax.scan(step, init, None, length=num_steps)
    model = LinearModel(w, b, jnp.zeros_like(b))
    return model._replace(noise_var=noise_variance(y - predict_linear(model, x))), losses
