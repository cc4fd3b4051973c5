"""Tabular Q-learning: the agent/environment loop, compiled and vmapped over seeds.

At every step the agent observes ``s``, picks ``a`` ε-greedily from its table ``Q``, the environment
returns ``s'`` and ``r``, and the agent moves ``Q(s, a)`` toward the one-step bootstrapped target

    ``Q(s, a) ← Q(s, a) + η [r + γ (1 − done) max_{a'} Q(s', a') − Q(s, a)]``.

It never sees ``P`` or ``R``; with enough exploration it converges to the same optimal ``Q*`` that
value iteration computes from the model. The whole run is one ``lax.scan``; step ``t`` draws from
``fold_in(key, t)``, so :func:`q_learning_seeds` can ``vmap`` seeds and (traced) ``learning_rate``,
``epsilon``.

>>> from dlcore.rl import make_gridworld, value_iteration
>>> import jax
>>> env = make_gridworld()
>>> Q, hist = q_learning(env, jax.random.PRNGKey(0), num_steps=3000)
>>> Q.shape, hist["reward"].shape
((11, 4), (3000,))
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from dlcore import random as drandom
from dlcore.errors import ConfigError
from dlcore.rl._gridworld import GridWorld, env_reset, env_step

RL_STREAM = "rl"
"""Stream name of an agent's randomness: ``dlcore.random.key(seed, "rl")``."""


def epsilon_greedy(key: jax.Array, q_A: jax.Array, epsilon) -> jax.Array:
    """With probability ``ε`` a uniform action, else a greedy one (ties broken uniformly at random).

    Random tie-breaking matters early on, when all ``Q`` are equal: always taking the first action
    would make the "greedy" agent walk into the same wall forever.

    >>> import jax, jax.numpy as jnp
    >>> int(epsilon_greedy(jax.random.PRNGKey(0), jnp.array([0.0, 2.0, 1.0]), 0.0))
    1
    """
    k_explore, k_rand, k_tie = jax.random.split(key, 3)
    best = q_A >= jnp.max(q_A)
    greedy = jax.random.choice(k_tie, q_A.shape[0], p=best / jnp.sum(best))
    random = jax.random.randint(k_rand, (), 0, q_A.shape[0])
    return jnp.where(jax.random.uniform(k_explore) < epsilon, random, greedy).astype(jnp.int32)


def q_learning(
    env: GridWorld,
    key: jax.Array,
    num_steps: int,
    learning_rate=0.5,
    epsilon=0.2,
    random_start=True,
) -> tuple[jax.Array, dict]:
    """Run ``num_steps`` agent/environment steps of tabular Q-learning (jittable).

    Args:
      env: the MDP (only sampled through :func:`env_step`, never read as a model).
      key: the agent's stream key (e.g. ``dlcore.random.key(seed, "rl")``); step ``t`` uses
        ``fold_in(key, t)`` for its action, transition and reset draws.
      num_steps: static number of environment steps (across episodes).
      learning_rate: ``η`` (may be traced).
      epsilon: exploration rate ``ε`` (may be traced).
      random_start: start episodes in uniform non-terminal states (exploring starts) instead of
        ``env.start``.
    Returns:
      ``(Q [S, A], history)`` with per-step ``reward``, ``done`` (an episode ended) and ``td_error``.
    """
    if int(num_steps) <= 0:
        raise ConfigError(f"num_steps must be positive, got {num_steps}")

    def body(carry, t):
        Q, s = carry
        k_act, k_env, k_reset = jax.random.split(drandom.step_key(key, t), 3)
        a = epsilon_greedy(k_act, Q[s], epsilon)
        s2, r, done = env_step(env, k_env, s, a)
        # The value of a terminal state is 0: bootstrapping stops at the end of an episode.
        target = r + env.gamma * jnp.where(done, 0.0, jnp.max(Q[s2]))
        td = target - Q[s, a]
        Q = Q.at[s, a].add(learning_rate * td)
        s_next = jnp.where(done, env_reset(env, k_reset, random_start), s2)
        return (Q, s_next), {"reward": r, "done": done, "td_error": td}

    Q0 = jnp.zeros((env.num_states, env.num_actions), jnp.float32)
    s0 = env_reset(env, drandom.stream_key(key, "first-reset"), random_start)
    (Q, _), history = jax.lax.scan(body, (Q0, s0), jnp.arange(int(num_steps)))
    return Q, history


def q_learning_seeds(
    env: GridWorld,
    seeds: Sequence[int] | jax.Array,
    num_steps: int,
    learning_rate=0.5,
    epsilon=0.2,
    random_start: bool = True,
) -> tuple[jax.Array, dict]:
    """Q-learning for many seeds at once: one compiled ``vmap`` over seeds (and per-seed hyperparameters).

    Args:
      env: the MDP (shared).
      seeds: ``int[N]`` seeds; seed ``k`` uses ``dlcore.random.key(k, "rl")``, so its run is the same
        as ``q_learning(env, key(k, "rl"), ...)`` (up to floating-point rounding of batched ops).
      num_steps: static.
      learning_rate, epsilon: scalars or ``[N]`` arrays (one value per seed: a sweep).
    Returns:
      ``(Q [N, S, A], history)`` with ``[N, num_steps]`` entries.

    >>> from dlcore.rl import make_gridworld
    >>> Q, _ = q_learning_seeds(make_gridworld(), [0, 1, 2], num_steps=100, epsilon=[0.1, 0.2, 0.3])
    >>> Q.shape
    (3, 11, 4)
    """
    seeds = jnp.asarray(seeds, jnp.uint32)
    if seeds.ndim != 1 or seeds.shape[0] == 0:
        raise ConfigError(f"seeds must be a non-empty 1-D list of integers, got shape {tuple(seeds.shape)}")
    n = seeds.shape[0]
    per_seed = {}
    for name, v in (("learning_rate", learning_rate), ("epsilon", epsilon)):
        arr = jnp.asarray(v, jnp.float32)
        if arr.ndim == 0:
            arr = jnp.full((n,), arr)
        if arr.shape != (n,):
            raise ConfigError(f"{name} must be a scalar or have one value per seed ({n}), got shape {tuple(arr.shape)}")
        per_seed[name] = arr

    @jax.jit
    def run(seeds, lr, eps):
        one = lambda sd, l, e: q_learning(env, drandom.key(sd, RL_STREAM), num_steps, l, e, random_start)
        return jax.vmap(one)(seeds, lr, eps)

    return run(seeds, per_seed["learning_rate"], per_seed["epsilon"])
