"""RL: the gridworld MDP, value iteration (Bellman), Q-learning over seeds reaching the optimal policy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import random as dr
from dlcore.errors import ConfigError, ShapeError
from dlcore.rl import (
    DEFAULT_LAYOUT,
    RL_STREAM,
    bellman_backup,
    env_reset,
    env_step,
    epsilon_greedy,
    greedy_policy,
    make_gridworld,
    optimal_actions,
    policy_evaluation,
    q_learning,
    q_learning_seeds,
    render_policy,
    rollout,
    state_cells,
    value_iteration,
)

UP, RIGHT, DOWN, LEFT = range(4)


def _state(layout, cell):
    return state_cells(layout).index(cell)


def test_gridworld_transitions():
    env = make_gridworld()
    P = np.asarray(env.transitions)
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=1e-6)
    s = int(env.start)
    assert state_cells(DEFAULT_LAYOUT)[s] == (2, 0)
    assert P[s, UP, _state(DEFAULT_LAYOUT, (1, 0))] == 1.0
    assert P[s, LEFT, s] == 1.0  # border: stay
    assert P[_state(DEFAULT_LAYOUT, (1, 0)), RIGHT, _state(DEFAULT_LAYOUT, (1, 0))] == 1.0  # wall: stay
    slip = make_gridworld(slip=0.2)
    row = np.asarray(slip.transitions)[s, UP]
    assert row[_state(DEFAULT_LAYOUT, (1, 0))] == pytest.approx(0.8)
    assert row[_state(DEFAULT_LAYOUT, (2, 1))] == pytest.approx(0.1) and row[s] == pytest.approx(0.1)
    goal = _state(DEFAULT_LAYOUT, (0, 3))
    assert bool(env.terminal[goal]) and np.all(P[goal, :, goal] == 1.0) and np.all(np.asarray(env.rewards)[goal] == 0)
    # Sampling the environment follows P.
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    nxt, r, done = jax.vmap(lambda k: env_step(slip, k, slip.start, UP))(keys)
    freq = np.bincount(np.asarray(nxt), minlength=slip.num_states) / 4000
    np.testing.assert_allclose(freq, row, atol=0.03)
    assert float(r[0]) == pytest.approx(-0.04) and not bool(done.any())


def test_value_iteration_satisfies_bellman_optimality():
    env = make_gridworld(slip=0.2, gamma=0.9)
    V, Q, iters = jax.jit(value_iteration)(env)
    assert 0 < int(iters) < 10_000
    np.testing.assert_allclose(jnp.max(bellman_backup(env, V), axis=1), V, atol=1e-5)
    np.testing.assert_allclose(policy_evaluation(env, greedy_policy(Q)), V, atol=1e-4)
    # Deterministic world: values follow from shortest paths, V = Σ γ^k r_k.
    env = make_gridworld()
    V, Q, _ = value_iteration(env)
    assert float(V[_state(DEFAULT_LAYOUT, (0, 2))]) == pytest.approx(1.0)
    assert float(V[_state(DEFAULT_LAYOUT, (0, 1))]) == pytest.approx(-0.04 + 0.95, rel=1e-5)
    assert render_policy(DEFAULT_LAYOUT, greedy_policy(Q)).splitlines()[0] == "> > > G"
    ep = rollout(env, jax.random.PRNGKey(0), greedy_policy(Q), max_steps=20)
    expected = -0.04 * sum(0.95**k for k in range(4)) + 0.95**4
    assert int(ep["length"]) == 5 and float(ep["return"]) == pytest.approx(expected, rel=1e-5)
    assert float(V[env.start]) == pytest.approx(expected, rel=1e-5)


def test_q_learning_over_seeds_reaches_value_iteration_policy():
    env = make_gridworld()
    V, Q_star, _ = value_iteration(env)
    best = np.asarray(optimal_actions(Q_star))
    seeds = jnp.arange(4)
    Q, hist = q_learning_seeds(env, seeds, num_steps=4000, learning_rate=0.5, epsilon=0.3)
    assert Q.shape == (4, env.num_states, 4) and hist["reward"].shape == (4, 4000)
    nonterminal = ~np.asarray(env.terminal)
    for k in range(4):
        pol = np.asarray(greedy_policy(Q[k]))
        chosen_is_optimal = best[np.arange(env.num_states), pol]
        assert chosen_is_optimal[nonterminal].all(), render_policy(DEFAULT_LAYOUT, pol)
        np.testing.assert_allclose(policy_evaluation(env, jnp.asarray(pol)), V, atol=1e-4)
        np.testing.assert_allclose(Q[k][nonterminal], Q_star[nonterminal], atol=0.1)
    assert int(hist["done"].sum(axis=1).min()) > 100  # many episodes: the agent/environment loop
    # Seed k of the vmapped run is the single run with key(k, "rl").
    Q1, _ = jax.jit(lambda k: q_learning(env, k, 4000, 0.5, 0.3))(dr.key(2, RL_STREAM))
    np.testing.assert_allclose(Q1, Q[2], atol=1e-5)


def test_epsilon_greedy_and_resets():
    q = jnp.array([0.0, 1.0, 1.0, -1.0])
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    greedy = np.asarray(jax.vmap(lambda k: epsilon_greedy(k, q, 0.0))(keys))
    assert set(greedy.tolist()) == {1, 2}  # ties broken at random, never a worse action
    assert abs((greedy == 1).mean() - 0.5) < 0.05
    explore = np.asarray(jax.vmap(lambda k: epsilon_greedy(k, q, 1.0))(keys))
    np.testing.assert_allclose(np.bincount(explore, minlength=4) / 4000, 0.25, atol=0.03)
    env = make_gridworld()
    starts = np.asarray(jax.vmap(lambda k: env_reset(env, k, True))(keys[:500]))
    assert not np.asarray(env.terminal)[starts].any() and len(set(starts.tolist())) == 9
    assert int(env_reset(env, keys[0], False)) == int(env.start)


def test_rl_bad_input_raises():
    with pytest.raises(ConfigError, match="equal-length"):
        make_gridworld(["S..", "..G."])
    with pytest.raises(ConfigError, match="unknown gridworld cell"):
        make_gridworld(["S.?G"])
    with pytest.raises(ConfigError, match="exactly one start"):
        make_gridworld(["S.SG"])
    with pytest.raises(ConfigError, match="terminal"):
        make_gridworld(["S..."])
    with pytest.raises(ConfigError, match="gamma"):
        make_gridworld(gamma=1.0)
    with pytest.raises(ConfigError, match="slip"):
        make_gridworld(slip=1.0)
    env = make_gridworld()
    with pytest.raises(ShapeError, match="one action per state"):
        policy_evaluation(env, jnp.zeros((3,), jnp.int32))
    with pytest.raises(ConfigError, match="one value per seed"):
        q_learning_seeds(env, [0, 1], 10, epsilon=[0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="num_steps"):
        q_learning(env, jax.random.PRNGKey(0), 0)
