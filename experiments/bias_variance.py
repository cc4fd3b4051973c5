"""Bias–variance: the decomposition of the test error vs capacity (polynomial degree), over seeds.

The lectures: the expected squared error of a model fitted on a random training set splits into
bias² (how far the *average* fit is from the truth) + variance (how much fits on different
training sets scatter) + noise (the irreducible σ²). Small capacity: high bias; large capacity:
high variance; the test error is U-shaped in between. Here the truth is f(x) = sin(2πx) on [0, 1],
y = f(x) + N(0, σ²) with σ = 0.3; a polynomial of each degree (Legendre features of 2x − 1, so high
degrees stay well conditioned) is fitted by least squares (``dlcore.classic.least_squares``) on
each of ``datasets`` = 200 training sets of ``n_train`` = 30 points (degrees 0–10: beyond, fits
that extrapolate into the gaps at the ends of [0, 1] make the variance astronomically heavy-tailed). On 500 test inputs with fresh
noise: ``test/bias2`` = mean_x (f̄(x) − f(x))², ``test/variance`` = mean_x mean_D (f̂_D(x) − f̄(x))²,
``test/noise`` = mean ε², ``test/mse`` = mean (y − f̂_D(x))², and ``test/gap`` = mse − (bias² +
variance + noise), which the decomposition says is 0 up to sampling error (bias² is estimated from
200 fits, so it carries + variance/200). ``val/mse`` is the same error on independent inputs and
noise. Each seed draws its own training sets and test points (``dlcore.sweep.measure_seeds``: one
vmapped program per degree); a measured study (``measure`` below, no training loop). Run:

    dlcore run bias_variance
    dlcore report runs/bias_variance/<timestamp>

Larger: dlcore run bias_variance --config.datasets=1000 --config.sweep.seeds=32
Other regimes: --config.n_train=100 (variance shrinks, the best degree grows), --config.noise=0.1,
--config.sweep.axes.degree.values="(0,1,2,3,4,5,6,7,8,9,10,11,12)"
"""

import jax
import jax.numpy as jnp
import ml_collections

from _base import study


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(dict(degree=3, n_train=30, noise=0.3, datasets=200, n_test=500))
    c.sweep = study(
        dict(degree=dict(path="degree", values=tuple(range(11)), integer=True)),
        select=dict(metric="val/mse", mode="min", group_by=("degree",)),  # every degree is reported
    )
    c.claim = dict(
        text="The test error of polynomial regression is U-shaped in the degree: bias² falls and variance "
             "grows with capacity, and bias² + variance + noise adds up to the test error",
        checks=(
            "test/mse: degree=3 < degree=1",
            "test/mse: degree=3 < degree=10",
            "test/bias2: degree=1 > degree=3",
            "test/variance: degree=10 > degree=3",
            "test/gap: degree=1 ~ 0",
            "test/gap: degree=3 ~ 0",
        ),
    )
    return c


def legendre_features(x_N, degree: int):
    """``[N, degree + 1]``: P_0..P_degree of ``2x − 1`` (Bonnet's recursion)."""
    t = 2.0 * x_N - 1.0
    cols = [jnp.ones_like(t), t][: degree + 1]
    for n in range(1, degree):
        cols.append(((2 * n + 1) * t * cols[n] - n * cols[n - 1]) / (n + 1))
    return jnp.stack(cols, axis=-1)


def measure(config, seeds):
    from dlcore.classic import least_squares
    from dlcore.sweep import measure_seeds

    d, n, sigma, T, M = (int(config.degree), int(config.n_train), float(config.noise), int(config.datasets),
                         int(config.n_test))
    f = lambda x: jnp.sin(2 * jnp.pi * x)  # noqa: E731

    def one(key):
        kx, ky, kt, ke, kv, kw = jax.random.split(key, 6)
        x = jax.random.uniform(kx, (T, n))
        y = f(x) + sigma * jax.random.normal(ky, (T, n))
        theta = jax.vmap(lambda xi, yi: least_squares(legendre_features(xi, d), yi))(x, y)  # [T, d+1]

        def errors(kin, knoise):
            xt = jax.random.uniform(kin, (M,))
            pred = theta @ legendre_features(xt, d).T  # [T, M]
            eps = sigma * jax.random.normal(knoise, (T, M))
            mean_fit = jnp.mean(pred, axis=0)
            bias2 = jnp.mean((mean_fit - f(xt)) ** 2)
            variance = jnp.mean((pred - mean_fit[None]) ** 2)
            noise = jnp.mean(eps**2)
            mse = jnp.mean((f(xt)[None] + eps - pred) ** 2)
            return bias2, variance, noise, mse

        bias2, variance, noise, mse = errors(kt, ke)
        val_mse = errors(kv, kw)[3]
        return {"val/mse": val_mse, "test/mse": mse, "test/bias2": bias2, "test/variance": variance,
                "test/noise": noise, "test/gap": mse - (bias2 + variance + noise)}

    return measure_seeds(one, seeds)
