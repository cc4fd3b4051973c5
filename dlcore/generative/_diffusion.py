"""Denoising diffusion (DDPM): noise schedule, closed-form forward process, ε-prediction, sampling.

Forward process (lecture 12), a Markov chain of ``T`` steps that adds noise:
``x_t = √(1 − β_t) x_{t−1} + √β_t ε``. With ``α_t = 1 − β_t`` and ``ᾱ_t = ∏_{s=0}^{t} α_s`` it
collapses to the closed form ``q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)``, so any ``x_t`` is one draw
away (:func:`q_sample`). Time indices are **0-based like the lectures' ᾱ**: index ``t ∈ {0,…,T−1}``
is the state after ``t + 1`` noising steps.

Training (Ho et al. 2020): pick ``t`` uniformly, noise ``x_0`` to ``x_t`` with ``ε``, and regress a
network ``ε_θ(x_t, t)`` onto ``ε`` (mean squared error) — equivalent to matching the posterior mean
``μ̃_t(x_t, x_0)`` of ``q(x_{t−1} | x_t, x_0)`` that the lectures' ``L_{t−1}`` compares.

Ancestral sampling: ``x_{T−1} ~ N(0, I)``, then for ``t = T−1 … 0``
``x_{t−1} = (x_t − β_t / √(1 − ᾱ_t) · ε_θ(x_t, t)) / √α_t + σ_t z`` (no noise at the last step),
with ``σ_t² = β_t`` or the posterior variance ``β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)``.

>>> s = linear_schedule(100)
>>> s.betas.shape, bool(s.alpha_bars[-1] < 0.5)
((100,), True)
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.generative._autoencoder import check_data_shape
from dlcore.nn._activations import get_activation

SAMPLER_VARIANCES = ("beta", "posterior")


class NoiseSchedule(NamedTuple):
    """``β_t`` and the quantities derived from it, each ``float32[T]`` (a pytree).

    Attributes:
      betas: ``β_t``.
      alphas: ``α_t = 1 − β_t``.
      alpha_bars: ``ᾱ_t = ∏_{s≤t} α_s``.
      posterior_variance: ``β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)`` (``β̃_0 = 0``).
    """

    betas: jax.Array
    alphas: jax.Array
    alpha_bars: jax.Array
    posterior_variance: jax.Array

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])


def make_schedule(betas) -> NoiseSchedule:
    """A :class:`NoiseSchedule` from ``β_t`` (``[T]``, each in ``(0, 1)``), computed in float64."""
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or b.size == 0:
        raise ConfigError(f"betas must be a non-empty 1-D array, got shape {b.shape}")
    if not np.all((b > 0) & (b < 1)):
        raise ConfigError(f"every beta must lie in (0, 1), got range [{b.min()}, {b.max()}]")
    a = 1.0 - b
    ab = np.cumprod(a)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    post = b * (1.0 - ab_prev) / (1.0 - ab)
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    return NoiseSchedule(f32(b), f32(a), f32(ab), f32(post))


def linear_schedule(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """DDPM's linear ``β_t`` from ``beta_start`` to ``beta_end`` (Ho et al. use T = 1000; for small ``T``
    raise ``beta_end`` so that ``ᾱ_{T−1} ≈ 0``)."""
    if int(num_steps) < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    return make_schedule(np.linspace(beta_start, beta_end, int(num_steps)))


def cosine_schedule(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Nichol & Dhariwal's cosine schedule: ``ᾱ(t) ∝ cos²((t/T + s)/(1 + s) · π/2)``, ``β`` clipped."""
    if int(num_steps) < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    t = np.arange(int(num_steps) + 1) / int(num_steps)
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    return make_schedule(np.clip(1.0 - f[1:] / f[:-1], 1e-8, max_beta))


def _per_example(v_B: jax.Array, like: jax.Array) -> jax.Array:
    # [B] -> [B, 1, ..., 1] explicitly (the tests forbid implicit rank promotion).
    return v_B.reshape((v_B.shape[0],) + (1,) * (like.ndim - 1))


def _check_t(t, schedule: NoiseSchedule, batch: int) -> jax.Array:
    t = jnp.asarray(t)
    if t.ndim == 0:
        t = jnp.full((batch,), t)
    if t.shape != (batch,) or not jnp.issubdtype(t.dtype, jnp.integer):
        raise ShapeError(f"t must be integer time indices [B] = [{batch}] (or a scalar), got {t.dtype}{tuple(t.shape)}")
    try:
        tt = np.asarray(t)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return t
    if tt.size and (tt.min() < 0 or tt.max() >= schedule.num_steps):
        raise ShapeError(
            f"time index {int(tt.max() if tt.max() >= schedule.num_steps else tt.min())} is outside "
            f"[0, {schedule.num_steps}) (0-based: index t is after t+1 noising steps)"
        )
    return t


def q_sample(schedule: NoiseSchedule, x0: jax.Array, t, noise: jax.Array) -> jax.Array:
    """Closed-form ``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε``, a draw from ``q(x_t | x_0)``.

    Args:
      schedule: the noise schedule.
      x0: clean data ``[B, ...]``.
      t: ``int[B]`` (or scalar) 0-based time indices.
      noise: ``ε`` with the shape of ``x0``.

    >>> import jax.numpy as jnp
    >>> s = linear_schedule(10)
    >>> bool(jnp.allclose(q_sample(s, jnp.ones((1, 2)), 0, jnp.zeros((1, 2))), jnp.sqrt(1 - 1e-4)))
    True
    """
    if noise.shape != x0.shape:
        raise ShapeError(f"noise {noise.shape} must have the shape of x0 {x0.shape}")
    t = _check_t(t, schedule, x0.shape[0])
    ab = _per_example(schedule.alpha_bars[t], x0)
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def forward_chain(schedule: NoiseSchedule, key: jax.Array, x0: jax.Array, num_steps: int) -> jax.Array:
    """Iterate ``x_t = √(1 − β_t) x_{t−1} + √β_t ε_{t−1}`` for ``num_steps`` steps (the Markov chain).

    Returns ``x`` at time index ``num_steps − 1``; step ``s`` draws its noise from ``fold_in(key, s)``.
    In distribution this equals :func:`q_sample` at ``t = num_steps − 1``.
    """
    if not 1 <= int(num_steps) <= schedule.num_steps:
        raise ConfigError(f"num_steps must be in [1, {schedule.num_steps}], got {num_steps}")

    def body(x, s):
        eps = jax.random.normal(jax.random.fold_in(key, s), x.shape, x.dtype)
        return jnp.sqrt(1.0 - schedule.betas[s]) * x + jnp.sqrt(schedule.betas[s]) * eps, None

    x, _ = jax.lax.scan(body, x0, jnp.arange(int(num_steps)))
    return x


def posterior_mean(schedule: NoiseSchedule, x0: jax.Array, x_t: jax.Array, t) -> jax.Array:
    """Mean of ``q(x_{t−1} | x_t, x_0)``:
    ``μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t`` (``ᾱ_{−1} = 1``)."""
    t = _check_t(t, schedule, x0.shape[0])
    ab = schedule.alpha_bars
    ab_prev = jnp.where(t > 0, ab[jnp.maximum(t - 1, 0)], 1.0)
    b, a, ab_t = schedule.betas[t], schedule.alphas[t], ab[t]
    c0 = _per_example(jnp.sqrt(ab_prev) * b / (1.0 - ab_t), x0)
    ct = _per_example(jnp.sqrt(a) * (1.0 - ab_prev) / (1.0 - ab_t), x0)
    return c0 * x0 + ct * x_t


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Sinusoidal embedding of time indices ``[B] -> [B, dim]``: ``[sin(t ω_k), cos(t ω_k)]``,
    ``ω_k = max_period^{−k/(dim/2)}`` (the Transformer's positional encoding applied to ``t``)."""
    if dim <= 0 or dim % 2:
        raise ConfigError(f"the time embedding size must be a positive even number, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class EpsilonMLP(nn.Module):
    """``ε_θ(x_t, t)``: an MLP whose every hidden layer also sees the time embedding.

    Attributes:
      data_shape: shape of one example (inputs and outputs match, as diffusion requires).
      widths: hidden widths.
      time_dim: size of the sinusoidal time embedding.
      activation: name or callable.

    Call: ``model.apply(params, x_t [B, *data_shape], t int[B])`` → ``ε̂ [B, *data_shape]``.
    """

    data_shape: Sequence[int]
    widths: Sequence[int] = (128, 128)
    time_dim: int = 32
    activation: str | Callable = "swish"

    @nn.compact
    def __call__(self, x_t, t):
        check_data_shape(x_t, self.data_shape, "EpsilonMLP")
        act = get_activation(self.activation)
        temb = timestep_embedding(jnp.broadcast_to(t, (x_t.shape[0],)), self.time_dim)
        h = x_t.reshape((x_t.shape[0], -1))
        for i, w in enumerate(self.widths):
            h = act(nn.Dense(int(w), name=f"dense_{i}")(h) + nn.Dense(int(w), name=f"time_{i}")(temb))
        out = nn.Dense(math.prod(self.data_shape), name="out")(h)
        return out.reshape(x_t.shape)


def diffusion_loss_fn(model: nn.Module, schedule: NoiseSchedule) -> Callable:
    """``loss_fn(params, x0, keys) -> (E‖ε − ε_θ(x_t, t)‖² / D, {})`` for :func:`make_gen_step`.

    ``t ~ U{0, …, T−1}`` and ``ε ~ N(0, I)`` come from ``keys["noise"]``; the loss is the mean over
    batch and features (Ho et al.'s simplified objective).
    """

    def loss_fn(params, x0, keys):
        k_t, k_eps = jax.random.split(keys["noise"])
        t = jax.random.randint(k_t, (x0.shape[0],), 0, schedule.num_steps)
        eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        eps_hat = model.apply(params, q_sample(schedule, x0, t, eps), t)
        return jnp.mean(jnp.square(eps - eps_hat)), {}

    return loss_fn


def ddpm_step(schedule: NoiseSchedule, x_t: jax.Array, t, eps_hat: jax.Array, z: jax.Array, variance: str = "beta"):
    """One reverse step ``x_t -> x_{t−1}`` given ``ε̂`` and fresh noise ``z`` (none added at ``t = 0``)."""
    if variance not in SAMPLER_VARIANCES:
        raise unknown_name("sampler variance", variance, SAMPLER_VARIANCES)
    t = _check_t(t, schedule, x_t.shape[0])
    b, a, ab = (_per_example(v[t], x_t) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
    mean = (x_t - b / jnp.sqrt(1.0 - ab) * eps_hat) / jnp.sqrt(a)
    var = b if variance == "beta" else _per_example(schedule.posterior_variance[t], x_t)
    return mean + jnp.where(_per_example(t, x_t) > 0, jnp.sqrt(var), 0.0) * z


def ddpm_sample(
    model: nn.Module,
    params,
    schedule: NoiseSchedule,
    key: jax.Array,
    num_samples: int,
    data_shape: Sequence[int],
    variance: str = "beta",
) -> jax.Array:
    """Ancestral sampling, all ``T`` reverse steps in one ``lax.scan``.

    Args:
      model: ``apply(params, x_t, t) -> ε̂``.
      params: its parameters.
      schedule: the schedule it was trained with.
      key: ``x_{T−1}`` from ``fold_in(key, T)``, step ``t``'s noise from ``fold_in(key, t)``.
      num_samples: ``B``.
      data_shape: shape of one example.
      variance: ``"beta"`` (``σ_t² = β_t``) or ``"posterior"`` (``β̃_t``).
    Returns:
      ``[B, *data_shape]`` samples.
    """
    if variance not in SAMPLER_VARIANCES:
        raise unknown_name("sampler variance", variance, SAMPLER_VARIANCES)
    if int(num_samples) <= 0:
        raise ConfigError(f"num_samples must be positive, got {num_samples}")
    shape = (int(num_samples),) + tuple(data_shape)
    x_last = jax.random.normal(jax.random.fold_in(key, schedule.num_steps), shape)

    def body(x, t):
        tb = jnp.full((shape[0],), t)
        eps_hat = model.apply(params, x, tb)
        z = jax.random.normal(jax.random.fold_in(key, t), shape)
        return ddpm_step(schedule, x, tb, eps_hat, z, variance), None

    x0, _ = jax.lax.scan(body, x_last, jnp.arange(schedule.num_steps - 1, -1, -1))
    return x0
