"""Generative adversarial networks: the lectures' losses and a compiled alternating update.

A generator ``G(z)`` maps noise to samples; a discriminator ``D(x) = σ(logit(x))`` tells real
from generated. With discriminator logits ``l`` (``log D = log σ(l)``, ``log(1 − D) = log σ(−l)``,
computed stably):

* discriminator (lecture 12): ``J_D = −½ E_x log D(x) − ½ E_z log(1 − D(G(z)))``;
* generator, **minimax**: ``J_G = −J_D`` (the game's saddle point); only ``½ E_z log(1 − D(G(z)))``
  depends on ``G``. Its gradient vanishes when ``D`` confidently rejects the fakes
  (``∂/∂l ½ log(1 − σ(l)) = −½ σ(l) → 0`` as ``l → −∞``), i.e. early in training;
* generator, **non-saturating**: ``J_G = −½ E_z log D(G(z))``, same fixed point, gradient
  ``−½ (1 − σ(l)) → −½`` when ``D`` wins: the variant used in practice.

One compiled step updates ``D`` (``d_steps`` times) on fresh latents, then ``G`` against the new
``D``; all latents come from the ``"latent"`` stream's key of that step.

>>> import jax.numpy as jnp
>>> round(float(discriminator_loss(jnp.zeros(4), jnp.zeros(4))), 4)  # D = ½ everywhere: log 2
0.6931
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from dlcore import random as drandom
from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.generative._autoencoder import Tower
from dlcore.generative._train import GEN_STREAMS, step_keys

GENERATOR_LOSSES = ("minimax", "non_saturating")


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """``J_D = −½ E log D(x) − ½ E log(1 − D(G(z)))`` from discriminator logits (scalar).

    Args:
      real_logits: ``[B]`` logits on data.
      fake_logits: ``[B']`` logits on generated samples.
    """
    return -0.5 * jnp.mean(jax.nn.log_sigmoid(real_logits)) - 0.5 * jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def generator_loss(fake_logits: jax.Array, kind: str = "non_saturating", real_logits: jax.Array | None = None) -> jax.Array:
    """The generator's loss from discriminator logits on generated samples (scalar).

    Args:
      fake_logits: ``[B]`` logits ``D`` gives to ``G(z)``.
      kind: ``"non_saturating"``: ``−½ E log D(G(z))``; ``"minimax"``: ``½ E log(1 − D(G(z)))``, the
        part of ``−J_D`` that depends on ``G``.
      real_logits: with ``kind="minimax"``, also add the real-data term so the value is exactly
        ``−J_D`` (it does not change the generator's gradient).

    >>> import jax.numpy as jnp
    >>> round(float(generator_loss(jnp.zeros(3))), 4)
    0.3466
    """
    if kind not in GENERATOR_LOSSES:
        raise unknown_name("generator loss", kind, GENERATOR_LOSSES)
    if kind == "non_saturating":
        if real_logits is not None:
            raise ConfigError("real_logits only applies to the minimax generator loss (J_G = -J_D)")
        return -0.5 * jnp.mean(jax.nn.log_sigmoid(fake_logits))
    loss = 0.5 * jnp.mean(jax.nn.log_sigmoid(-fake_logits))
    if real_logits is not None:
        loss = loss + 0.5 * jnp.mean(jax.nn.log_sigmoid(real_logits))
    return loss


def mlp_gan(data_dim: int, latent_dim: int, widths: Sequence[int] = (64, 64), activation: str | Callable = "relu"):
    """An MLP generator ``[B, latent_dim] -> [B, data_dim]`` and discriminator ``[B, data_dim] -> [B, 1]``."""
    if data_dim <= 0 or latent_dim <= 0:
        raise ConfigError(f"data_dim and latent_dim must be positive, got {data_dim}, {latent_dim}")
    return Tower(widths, data_dim, activation), Tower(widths, 1, activation)


@struct.dataclass
class GANState:
    """Two players' parameters and optimizer states, the global step and the stream keys."""

    step: jax.Array
    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    keys: dict


def init_gan_state(
    generator: nn.Module,
    discriminator: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    seed,
    latent_dim: int,
    x_example: jax.Array,
) -> GANState:
    """Initialise both players from the ``"params"`` stream of ``seed`` (traceable: vmap over seeds).

    Args:
      x_example: one data batch ``[B, ...]`` (only the shape matters).
    """
    k_g, k_d = jax.random.split(drandom.key(seed, "params"))
    g_params = generator.init(k_g, jnp.zeros((x_example.shape[0], latent_dim), jnp.float32))
    d_params = discriminator.init(k_d, jnp.zeros_like(x_example, jnp.float32))
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=g_tx.init(g_params),
        d_opt_state=d_tx.init(d_params),
        keys=drandom.stream_keys(seed, GEN_STREAMS),
    )


def _logits(discriminator, d_params, x):
    out = discriminator.apply(d_params, x)
    if out.ndim != 2 or out.shape[1] != 1:
        raise ShapeError(f"the discriminator must return logits [B, 1], got {tuple(out.shape)}")
    return out[:, 0]


def make_gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    latent_dim: int,
    loss: str = "non_saturating",
    d_steps: int = 1,
) -> Callable:
    """A pure ``(state, x_batch) -> (state, metrics)`` alternating update (jit/scan/vmap it).

    Args:
      generator: ``apply(params, z [B, latent_dim]) -> x [B, ...]``.
      discriminator: ``apply(params, x) -> logits [B, 1]``.
      g_tx, d_tx: the players' optimizers.
      latent_dim: size of ``z ~ N(0, I)``.
      loss: generator loss, see :data:`GENERATOR_LOSSES`.
      d_steps: discriminator updates per generator update (the same real batch, fresh latents).
    Returns:
      the step; metrics ``d_loss``, ``g_loss``, ``d_real`` (mean ``D(x)``), ``d_fake`` (mean
      ``D(G(z))`` before the update).
    """
    if loss not in GENERATOR_LOSSES:
        raise unknown_name("generator loss", loss, GENERATOR_LOSSES)
    if int(d_steps) < 1:
        raise ConfigError(f"d_steps must be >= 1, got {d_steps}")

    def d_loss_fn(d_params, x, fake):
        real_l, fake_l = _logits(discriminator, d_params, x), _logits(discriminator, d_params, fake)
        return discriminator_loss(real_l, fake_l), (real_l, fake_l)

    def g_loss_fn(g_params, d_params, z):
        return generator_loss(_logits(discriminator, d_params, generator.apply(g_params, z)), loss)

    def step(state: GANState, x) -> tuple[GANState, dict]:
        k_latent = step_keys(state.keys, state.step)["latent"]
        batch = x.shape[0]
        d_params, d_opt = state.d_params, state.d_opt_state
        for i in range(int(d_steps)):
            z = jax.random.normal(jax.random.fold_in(k_latent, i), (batch, latent_dim))
            fake = jax.lax.stop_gradient(generator.apply(state.g_params, z))  # D's step leaves G alone
            (d_loss, (real_l, fake_l)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params, x, fake)
            updates, d_opt = d_tx.update(grads, d_opt, d_params)
            d_params = optax.apply_updates(d_params, updates)
        z = jax.random.normal(jax.random.fold_in(k_latent, int(d_steps)), (batch, latent_dim))
        g_loss, grads = jax.value_and_grad(g_loss_fn)(state.g_params, d_params, z)
        updates, g_opt = g_tx.update(grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        new = state.replace(
            step=state.step + 1, g_params=g_params, d_params=d_params, g_opt_state=g_opt, d_opt_state=d_opt
        )
        metrics = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": jnp.mean(jax.nn.sigmoid(real_l)),
            "d_fake": jnp.mean(jax.nn.sigmoid(fake_l)),
        }
        return new, metrics

    return step


def gan_sample(generator: nn.Module, g_params, key: jax.Array, num_samples: int, latent_dim: int) -> jax.Array:
    """``G(z)`` for ``z ~ N(0, I)`` drawn from ``key``: ``[num_samples, ...]``."""
    if int(num_samples) <= 0:
        raise ConfigError(f"num_samples must be positive, got {num_samples}")
    return generator.apply(g_params, jax.random.normal(key, (int(num_samples), latent_dim)))
