"""A little reinforcement learning: a gridworld MDP, value iteration, tabular Q-learning over seeds."""

from dlcore.rl._gridworld import (
    ACTIONS,
    ARROWS,
    DEFAULT_LAYOUT,
    GridWorld,
    bellman_backup,
    env_reset,
    env_step,
    greedy_policy,
    make_gridworld,
    optimal_actions,
    policy_evaluation,
    render_policy,
    rollout,
    state_cells,
    value_iteration,
)
from dlcore.rl._qlearning import RL_STREAM, epsilon_greedy, q_learning, q_learning_seeds

__all__ = [
    "ACTIONS",
    "ARROWS",
    "DEFAULT_LAYOUT",
    "RL_STREAM",
    "GridWorld",
    "bellman_backup",
    "env_reset",
    "env_step",
    "epsilon_greedy",
    "greedy_policy",
    "make_gridworld",
    "optimal_actions",
    "policy_evaluation",
    "q_learning",
    "q_learning_seeds",
    "render_policy",
    "rollout",
    "state_cells",
    "value_iteration",
]
