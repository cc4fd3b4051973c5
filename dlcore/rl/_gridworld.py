"""A tiny gridworld MDP ``(S, A, R, P, γ)`` and the planning algorithms that solve it exactly.

The lectures define an RL problem as a Markov decision process: states ``S``, actions ``A``, rewards
``R(s, a)``, transition probabilities ``P(s' | s, a)`` and a discount ``γ``. A gridworld makes every
part visible: cells are states, the four moves are actions, walls block, a goal ``G`` and a pit ``X``
end the episode with a reward, and every other move costs a little. With ``slip > 0`` the agent
slips to a perpendicular direction (``slip / 2`` each), as in Russell & Norvig's 4×3 world (the
default layout).

Because ``P`` and ``R`` are small arrays, the optimal values can be computed exactly by **value
iteration** — repeated Bellman optimality backups ``Q(s, a) = R(s, a) + γ Σ_{s'} P(s'|s, a) V(s')``,
``V(s) = max_a Q(s, a)`` — which is what model-free Q-learning (:mod:`dlcore.rl._qlearning`) must
rediscover from experience alone.

>>> env = make_gridworld()
>>> env.num_states, env.num_actions
(11, 4)
>>> V, Q, iters = value_iteration(env)
>>> print(render_policy(DEFAULT_LAYOUT, greedy_policy(Q)))
> > > G
^ # ^ X
^ > ^ <
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError, ShapeError

DEFAULT_LAYOUT: tuple[str, ...] = ("...G", ".#.X", "S...")
"""Russell & Norvig's 4×3 world: start bottom-left, goal (+1) top-right, pit (−1) below it, one wall."""

ACTIONS: tuple[str, ...] = ("up", "right", "down", "left")
ARROWS = ("^", ">", "v", "<")
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
_CELLS = ".#SGX"


class GridWorld(NamedTuple):
    """A finite MDP as arrays (a pytree: pass it through ``jit``/``vmap``).

    Attributes:
      transitions: ``P[s, a, s']`` ``float32[S, A, S]``, rows sum to 1; terminal states are absorbing.
      rewards: expected reward ``R[s, a] = Σ_{s'} P[s, a, s'] r(s')`` ``float32[S, A]`` (0 from
        terminal states).
      entry_rewards: ``r(s')``, the reward for entering ``s'`` ``float32[S]``.
      terminal: ``bool[S]``.
      start: ``int32[]`` start state.
      gamma: ``float32[]`` discount ``γ`` (may be traced and swept).
    """

    transitions: jax.Array
    rewards: jax.Array
    entry_rewards: jax.Array
    terminal: jax.Array
    start: jax.Array
    gamma: jax.Array

    @property
    def num_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.transitions.shape[1])


def state_cells(layout: Sequence[str]) -> list[tuple[int, int]]:
    """``(row, col)`` of each state, in state order (row-major over the non-wall cells)."""
    return [(r, c) for r, row in enumerate(layout) for c, ch in enumerate(row) if ch != "#"]


def make_gridworld(
    layout: Sequence[str] = DEFAULT_LAYOUT,
    step_reward: float = -0.04,
    goal_reward: float = 1.0,
    pit_reward: float = -1.0,
    slip: float = 0.0,
    gamma: float = 0.95,
) -> GridWorld:
    """Build a :class:`GridWorld` from a text layout.

    Args:
      layout: equal-length rows of ``.`` (free), ``#`` (wall), ``S`` (start, exactly one),
        ``G`` (goal, terminal), ``X`` (pit, terminal).
      step_reward: reward for entering a free or start cell (a small cost makes short paths optimal).
      goal_reward, pit_reward: reward for entering ``G`` / ``X``.
      slip: probability of moving perpendicular to the chosen direction (split evenly).
      gamma: discount in ``[0, 1)``.
    Returns:
      the MDP; bumping into a wall or the border leaves the agent where it is.
    Raises:
      ConfigError: ragged rows, unknown characters, no/multiple starts, no terminal, bad
        ``slip``/``gamma``.
    """
    rows = list(layout)
    if not rows or any(len(r) != len(rows[0]) for r in rows) or not rows[0]:
        raise ConfigError(f"a gridworld layout needs equal-length, non-empty rows, got {rows!r}")
    bad = sorted({ch for r in rows for ch in r} - set(_CELLS))
    if bad:
        raise ConfigError(f"unknown gridworld cell(s) {bad}; use one of {_CELLS!r} (free, wall, start, goal, pit)")
    cells = state_cells(rows)
    kinds = [rows[r][c] for r, c in cells]
    if kinds.count("S") != 1:
        raise ConfigError(f"a gridworld needs exactly one start cell 'S', found {kinds.count('S')}")
    if not any(k in "GX" for k in kinds):
        raise ConfigError("a gridworld needs at least one terminal cell ('G' goal or 'X' pit)")
    if not 0.0 <= slip < 1.0:
        raise ConfigError(f"slip must be in [0, 1), got {slip}")
    if not 0.0 <= gamma < 1.0:
        raise ConfigError(f"gamma must be in [0, 1) (value iteration converges for γ < 1), got {gamma}")
    index = {cell: i for i, cell in enumerate(cells)}
    n, h, w = len(cells), len(rows), len(rows[0])
    terminal = np.array([k in "GX" for k in kinds])
    entry = np.array([goal_reward if k == "G" else pit_reward if k == "X" else step_reward for k in kinds])

    def move(s, a):
        r, c = cells[s]
        nr, nc = r + _MOVES[a][0], c + _MOVES[a][1]
        return index.get((nr, nc), s) if 0 <= nr < h and 0 <= nc < w else s

    P = np.zeros((n, 4, n))
    for s in range(n):
        for a in range(4):
            if terminal[s]:
                P[s, a, s] = 1.0  # absorbing, reward 0: V(terminal) = 0
                continue
            P[s, a, move(s, a)] += 1.0 - slip
            for side in ((a + 1) % 4, (a + 3) % 4):
                P[s, a, move(s, side)] += slip / 2
    R = np.where(terminal[:, None], 0.0, P @ entry)
    return GridWorld(
        transitions=jnp.asarray(P, jnp.float32),
        rewards=jnp.asarray(R, jnp.float32),
        entry_rewards=jnp.asarray(entry, jnp.float32),
        terminal=jnp.asarray(terminal),
        start=jnp.asarray(kinds.index("S"), jnp.int32),
        gamma=jnp.asarray(gamma, jnp.float32),
    )


def env_reset(env: GridWorld, key: jax.Array, random_start=False) -> jax.Array:
    """The first state of an episode: ``env.start``, or (``random_start``) a uniform non-terminal state.

    Random ("exploring") starts let a learner visit every state often; ``random_start`` may be traced.
    """
    p = jnp.where(env.terminal, 0.0, 1.0)
    s_rand = jax.random.choice(key, env.num_states, p=p / jnp.sum(p))
    return jnp.where(random_start, s_rand, env.start).astype(jnp.int32)


def env_step(env: GridWorld, key: jax.Array, state, action) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One environment transition: ``s' ~ P(· | s, a)``, reward ``r(s')``, ``done = terminal(s')``.

    Returns:
      ``(next_state int32[], reward float32[], done bool[])``; from a terminal state nothing changes
      and the reward is 0.
    """
    nxt = jax.random.choice(key, env.num_states, p=env.transitions[state, action]).astype(jnp.int32)
    reward = jnp.where(env.terminal[state], 0.0, env.entry_rewards[nxt])
    return nxt, reward, env.terminal[nxt]


def bellman_backup(env: GridWorld, V: jax.Array) -> jax.Array:
    """``Q(s, a) = R(s, a) + γ Σ_{s'} P(s'|s, a) V(s')`` ``[S, A]``."""
    return env.rewards + env.gamma * jnp.einsum("sat,t->sa", env.transitions, V)


def value_iteration(env: GridWorld, tol: float = 1e-6, max_iters: int = 10_000):
    """Iterate ``V ← max_a [R + γ P V]`` until ``max |ΔV| < tol`` (a ``lax.while_loop``; jittable).

    Returns:
      ``(V [S], Q [S, A], iterations int32[])``; ``Q`` is the optimal action-value function.
    """
    if tol <= 0 or max_iters < 1:
        raise ConfigError(f"value_iteration needs tol > 0 and max_iters >= 1, got {tol}, {max_iters}")

    def cond(c):
        _, delta, i = c
        return (delta >= tol) & (i < max_iters)

    def body(c):
        V, _, i = c
        V_new = jnp.max(bellman_backup(env, V), axis=1)
        return V_new, jnp.max(jnp.abs(V_new - V)), i + 1

    V0 = jnp.zeros((env.num_states,), jnp.float32)
    V, _, iters = jax.lax.while_loop(cond, body, (V0, jnp.asarray(jnp.inf, jnp.float32), jnp.asarray(0, jnp.int32)))
    return V, bellman_backup(env, V), iters


def greedy_policy(Q: jax.Array) -> jax.Array:
    """``π(s) = argmax_a Q(s, a)`` ``int32[S]`` (ties: the first action)."""
    return jnp.argmax(Q, axis=-1).astype(jnp.int32)


def optimal_actions(Q: jax.Array, atol: float = 1e-5) -> jax.Array:
    """``bool[S, A]``: actions within ``atol`` of the best (several are optimal when paths tie)."""
    return Q >= jnp.max(Q, axis=-1, keepdims=True) - atol


def policy_evaluation(env: GridWorld, policy: jax.Array) -> jax.Array:
    """``V^π`` exactly: solve ``(I − γ P_π) V = R_π`` for a deterministic policy ``int[S]``."""
    if policy.shape != (env.num_states,):
        raise ShapeError(f"a policy needs one action per state, shape ({env.num_states},), got {tuple(policy.shape)}")
    idx = jnp.arange(env.num_states)
    P_pi, R_pi = env.transitions[idx, policy], env.rewards[idx, policy]
    return jnp.linalg.solve(jnp.eye(env.num_states) - env.gamma * P_pi, R_pi)


def rollout(env: GridWorld, key: jax.Array, policy: jax.Array, max_steps: int = 100):
    """Run one episode of a fixed policy from ``env.start``: the agent/environment loop in a ``scan``.

    Args:
      env: the MDP.
      key: step ``t``'s transition draws ``fold_in(key, t)``.
      policy: ``int[S]`` actions.
      max_steps: static horizon.
    Returns:
      dict of ``states int32[max_steps + 1]``, ``rewards [max_steps]`` (0 after the episode ended),
      ``return`` (discounted), ``length`` (steps until a terminal state, ``max_steps`` if none).
    """

    def body(carry, t):
        s, done, ret, disc = carry
        s2, r, d2 = env_step(env, jax.random.fold_in(key, t), s, policy[s])
        r = jnp.where(done, 0.0, r)
        s2 = jnp.where(done, s, s2)
        return (s2, done | d2, ret + disc * r, disc * env.gamma), (s2, r, done)

    init = (env.start, env.terminal[env.start], jnp.zeros((), jnp.float32), jnp.ones((), jnp.float32))
    (_, _, ret, _), (states, rewards, was_done) = jax.lax.scan(body, init, jnp.arange(int(max_steps)))
    return {
        "states": jnp.concatenate([env.start[None], states]),
        "rewards": rewards,
        "return": ret,
        "length": jnp.sum(~was_done).astype(jnp.int32),
    }


def render_policy(layout: Sequence[str], policy) -> str:
    """The policy as arrows on the grid (walls ``#``, terminals as in the layout)."""
    policy = np.asarray(policy)
    grid = [[ch for ch in row] for row in layout]
    for s, (r, c) in enumerate(state_cells(layout)):
        if grid[r][c] not in "GX":
            grid[r][c] = ARROWS[int(policy[s])]
    return "\n".join(" ".join(row) for row in grid)
