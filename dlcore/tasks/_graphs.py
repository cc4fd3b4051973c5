"""Training graph networks on dlcore's common train state and step (node or graph classification).

:func:`fit_gnn` is full-batch training with the same :class:`dlcore.train.TrainState`,
:func:`dlcore.train.make_train_step` (NaN guard, keyed streams, masked loss and metrics) and named
optimizer as every other run; the whole run is one ``lax.scan``, so it jits and vmaps over seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlcore.errors import DataError, ShapeError
from dlcore.nn import GraphNetwork, GraphsTuple, validate_graph
from dlcore.nn._gnn import _concrete
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, TrainState, init_state, make_train_step


def gnn_recipe(model: GraphNetwork) -> Recipe:
    """The recipe of a GNN classifier: masked cross-entropy and accuracy, Adam, no weight penalty."""
    return Recipe(model, optimizer_fn("adam"), penalty=None)


def fit_gnn(
    model: GraphNetwork,
    graph: GraphsTuple,
    labels: jax.Array,
    mask: jax.Array,
    seed,
    num_steps: int = 200,
    learning_rate: float = 1e-2,
) -> tuple[TrainState, dict]:
    """Full-batch Adam training of a GNN classifier, the whole run in one ``lax.scan``.

    Args:
      model: a :class:`dlcore.nn.GraphNetwork` whose ``task`` matches the labels.
      graph: the (padded) graph or batch of graphs.
      labels: ``int[N]`` (node task) or ``int[G]`` (graph task).
      mask: ``bool`` of the same shape: which labels count in the loss (labelled nodes, real graphs).
      seed: the run's seed (initial parameters from its ``params`` stream; vmappable).
      num_steps: Adam steps.
      learning_rate: Adam step size (may be traced).
    Returns:
      ``(state, history)``: the final :class:`dlcore.train.TrainState` (``state.params`` is the
      model's ``params`` collection) and ``history["loss"|"accuracy"|"grad_norm"]`` ``[num_steps]``.

    >>> from dlcore.nn import karate_club
    >>> g, y = karate_club()
    >>> m = GraphNetwork(latent_size=8, num_steps=1, num_outputs=2)
    >>> state, hist = fit_gnn(m, g, y, g.node_mask, seed=0, num_steps=5)
    >>> hist["loss"].shape
    (5,)
    """
    validate_graph(graph)
    expected = graph.num_nodes if model.task == "node" else graph.num_graphs
    if labels.shape != (expected,) or mask.shape != (expected,):
        raise ShapeError(
            f"a {model.task}-task GNN needs labels and mask of shape ({expected},), got {labels.shape} / "
            f"{mask.shape}; use task='graph' for one label per graph"
        )
    lab = _concrete(labels)
    if lab is not None and (lab.min() < 0 or lab.max() >= model.num_outputs):
        raise DataError(f"labels must lie in [0, {model.num_outputs}), got range [{lab.min()}, {lab.max()}]")
    recipe = gnn_recipe(model)
    state = init_state(recipe, seed, {"learning_rate": learning_rate}, graph)
    batch = {"x": graph, "y": labels, "mask": mask.astype(jnp.float32)}
    step = make_train_step(recipe)
    return jax.lax.scan(lambda s, _: step(s, batch), state, None, length=num_steps)
