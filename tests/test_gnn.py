"""Graph neural networks: aggregation vs NumPy, permutation equivariance, padding, learning, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.errors import ConfigError, ShapeError
from dlcore.metrics import accuracy
from dlcore.tasks import fit_gnn
from dlcore.nn import (
    GraphNetwork,
    GraphsTuple,
    batch_graphs,
    karate_club,
    make_graph,
    pad_graphs,
    segment_aggregate,
    synthetic_graph_classification,
    validate_graph,
)


def _random_graph(rng, n=7, e=15, dn=3, de=2):
    snd, rcv = rng.integers(0, n, e), rng.integers(0, n, e)
    return make_graph(snd, rcv, n, nodes=rng.normal(size=(n, dn)), edges=rng.normal(size=(e, de)))


@pytest.mark.parametrize("aggregation", ["sum", "mean", "max"])
def test_segment_aggregate_matches_numpy(aggregation):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20, 3)).astype(np.float32)
    ids = rng.integers(0, 6, 20)
    ids[ids == 4] = 5  # segment 4 stays empty
    mask = rng.random(20) < 0.7
    out = np.asarray(segment_aggregate(jnp.asarray(data), jnp.asarray(ids), 6, aggregation, jnp.asarray(mask)))
    ref = np.zeros((6, 3), np.float32)
    for s in range(6):
        rows = data[(ids == s) & mask]
        if len(rows):
            ref[s] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.max(0)}[aggregation]
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert np.all(out[4] == 0.0)  # empty segment: 0, not -inf


@pytest.mark.parametrize("aggregation", ["sum", "mean", "max"])
def test_output_equivariant_to_node_permutation(aggregation):
    rng = np.random.default_rng(1)
    g = _random_graph(rng)
    perm = rng.permutation(g.num_nodes)  # new node i is old node perm[i]
    inv = np.argsort(perm)
    eperm = rng.permutation(g.num_edges)  # edge order must not matter either
    gp = make_graph(
        inv[np.asarray(g.senders)][eperm],
        inv[np.asarray(g.receivers)][eperm],
        g.num_nodes,
        nodes=np.asarray(g.nodes)[perm],
        edges=np.asarray(g.edges)[eperm],
    )
    node_model = GraphNetwork(latent_size=8, num_steps=2, num_outputs=3, aggregation=aggregation)
    params = node_model.init(jax.random.PRNGKey(0), g)
    out, out_p = node_model.apply(params, g), node_model.apply(params, gp)
    np.testing.assert_allclose(np.asarray(out_p), np.asarray(out)[perm], rtol=1e-5, atol=1e-5)
    assert float(jnp.std(out)) > 1e-3  # not trivially constant
    graph_model = node_model.clone(task="graph", readout=aggregation)
    gparams = graph_model.init(jax.random.PRNGKey(1), g)
    np.testing.assert_allclose(graph_model.apply(gparams, gp), graph_model.apply(gparams, g), rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_real_outputs():
    rng = np.random.default_rng(2)
    b = batch_graphs([_random_graph(rng, 5, 8), _random_graph(rng, 4, 6)])
    p = pad_graphs(b, max_nodes=14, max_edges=20, max_graphs=4)
    # Garbage in the padding rows: it must not reach any real node or graph.
    nodes = p.nodes.at[b.num_nodes :].set(1e3 * jnp.asarray(rng.normal(size=(14 - b.num_nodes, 3)), jnp.float32))
    edges = p.edges.at[b.num_edges :].set(-1e3)
    p = p._replace(nodes=nodes, edges=edges)
    for task in ("node", "graph"):
        model = GraphNetwork(latent_size=8, num_steps=3, num_outputs=2, task=task)
        params = model.init(jax.random.PRNGKey(0), b)
        real, padded = model.apply(params, b), jax.jit(model.apply)(params, p)
        n = b.num_nodes if task == "node" else b.num_graphs
        np.testing.assert_allclose(np.asarray(padded[:n]), np.asarray(real), rtol=1e-5, atol=1e-5)
        assert np.all(np.asarray(padded[n:]) == 0.0)


def test_batching_equals_graphs_one_at_a_time():
    rng = np.random.default_rng(3)
    a, c = _random_graph(rng, 5, 8), _random_graph(rng, 6, 9)
    model = GraphNetwork(latent_size=8, num_steps=2, num_outputs=2, task="graph", readout="mean")
    params = model.init(jax.random.PRNGKey(0), a)
    both = model.apply(params, batch_graphs([a, c]))
    singles = jnp.concatenate([model.apply(params, a), model.apply(params, c)])
    np.testing.assert_allclose(both, singles, rtol=1e-5, atol=1e-5)


def test_mean_aggregation_cannot_count_degrees():
    # Constant features: sum aggregation sees degrees, mean over identical messages does not.
    g, _ = synthetic_graph_classification(jax.random.PRNGKey(0), 6)
    for agg, distinct in (("mean", False), ("sum", True)):
        model = GraphNetwork(latent_size=8, num_steps=2, num_outputs=3, task="graph", aggregation=agg, readout="mean")
        out = model.apply(model.init(jax.random.PRNGKey(0), g), g)
        assert bool(jnp.allclose(out, out[0:1], atol=1e-6)) is not distinct


def test_karate_club_node_classifier_learns():
    g, y = karate_club()
    assert g.num_nodes == 34 and g.num_edges == 2 * 78
    labels = np.asarray(y)
    degree = np.bincount(np.asarray(g.receivers), minlength=34)
    train = np.zeros(34, bool)
    for c in (0, 1):  # label each club's 4 best-connected members (its leader among them)
        members = np.flatnonzero(labels == c)
        train[members[np.argsort(-degree[members], kind="stable")[:4]]] = True
    assert train[0] and train[33]
    model = GraphNetwork(latent_size=16, num_steps=2, num_outputs=2, aggregation="mean")
    run = jax.jit(jax.vmap(lambda s: fit_gnn(model, g, y, jnp.asarray(train), seed=s, num_steps=100)))
    states, hist = run(jnp.arange(3))
    assert np.all(np.asarray(hist["loss"][:, -1]) < 0.1 * np.asarray(hist["loss"][:, 0]))
    held_out = jax.vmap(lambda p: accuracy(model.apply({"params": p}, g), y, jnp.asarray(~train)))(states.params)
    # 26 unlabelled members, half per club: chance is 0.5; the structure carries the labels.
    assert float(jnp.mean(held_out)) >= 0.8 and float(jnp.min(held_out)) >= 0.7, held_out


def test_graph_classifier_learns_synthetic_families():
    g, y = synthetic_graph_classification(jax.random.PRNGKey(0), 48)
    p = pad_graphs(g, g.num_nodes + 1, g.num_edges, g.num_graphs + 1)
    yp = jnp.concatenate([y, jnp.zeros((1,), jnp.int32)])
    model = GraphNetwork(latent_size=16, num_steps=2, num_outputs=3, task="graph")
    state, hist = fit_gnn(model, p, yp, p.graph_mask, seed=0, num_steps=150)
    assert float(hist["loss"][-1]) < 0.05 < float(hist["loss"][0])
    gt, yt = synthetic_graph_classification(jax.random.PRNGKey(1), 30)
    assert float(accuracy(model.apply({"params": state.params}, gt), yt)) >= 0.9


def test_edges_outside_node_set_raise():
    with pytest.raises(ShapeError, match="outside the node set"):
        make_graph([0, 1], [1, 5], num_nodes=3)
    with pytest.raises(ShapeError, match="outside the node set"):
        make_graph([-1], [0], num_nodes=3)
    g = make_graph([0, 1], [1, 2], num_nodes=3)
    bad = g._replace(receivers=jnp.array([1, 3], jnp.int32))
    model = GraphNetwork(latent_size=4, num_steps=1, num_outputs=2)
    with pytest.raises(ShapeError, match="outside the node set"):
        model.init(jax.random.PRNGKey(0), bad)
    # An edge of graph 0 pointing into graph 1's nodes.
    b = batch_graphs([g, g])
    cross = b._replace(senders=b.senders.at[0].set(4))
    with pytest.raises(ShapeError, match="outside that graph's node set"):
        validate_graph(cross)


def test_bad_edges_caught_on_host_in_batch_and_pad():
    g = make_graph([0, 1], [1, 2], num_nodes=3)
    bad = g._replace(receivers=jnp.array([1, 5], jnp.int32))  # node 5 of a 3-node graph
    # batch_graphs names the input graph, the edge, the index and the node count (before offsetting)
    with pytest.raises(ShapeError, match=r"graph 1 of 2: edge 1 has receiver 5 outside the node set \[0, 3\)"):
        batch_graphs([g, bad])
    with pytest.raises(ShapeError, match=r"pad_graphs: edge 1 has receiver 5 outside the node set \[0, 3\)"):
        pad_graphs(bad, 6, 4, 3)
    # tracing them would skip the check: refused with the fix
    with pytest.raises(ShapeError, match="on the host"):
        jax.jit(lambda s: pad_graphs(g._replace(senders=s), 6, 4, 3))(g.senders)


def test_bad_edges_under_jit_give_nan_not_wrong_numbers():
    """Under jit indices are traced: XLA clamped the gather and dropped the scatter, silently."""
    g = pad_graphs(batch_graphs([make_graph([0, 1], [1, 2], num_nodes=3)] * 2), 8, 6, 3)
    for task in ("node", "graph"):
        model = GraphNetwork(latent_size=4, num_steps=1, num_outputs=2, task=task)
        params = model.init(jax.random.PRNGKey(0), g)
        apply = jax.jit(model.apply)
        assert np.isfinite(np.asarray(apply(params, g))).all()
        for bad in (g._replace(receivers=g.receivers.at[1].set(8)),  # outside [0, 8)
                    g._replace(senders=g.senders.at[0].set(-1)),
                    g._replace(senders=g.senders.at[0].set(4))):  # into the other graph
            out = np.asarray(apply(params, bad))
            assert np.isnan(out).all(), (task, out)
        with pytest.raises(ShapeError):  # eagerly the same graph raises
            model.apply(params, bad)
    # a padding edge (masked) is not an error
    assert np.isfinite(np.asarray(jax.jit(model.apply)(params, g))).all()


def test_bad_graph_shapes_and_config_raise():
    g = make_graph([0], [1], num_nodes=2)
    with pytest.raises(ShapeError, match="2-D"):
        validate_graph(g._replace(nodes=jnp.ones((2,))))
    with pytest.raises(ShapeError, match="receivers has shape"):
        validate_graph(g._replace(receivers=jnp.array([1, 0], jnp.int32)))
    with pytest.raises(ShapeError, match="n_node sums"):
        validate_graph(g._replace(n_node=jnp.array([3], jnp.int32)))
    with pytest.raises(ShapeError, match="GraphsTuple"):
        validate_graph({"nodes": g.nodes})
    with pytest.raises(ConfigError, match="unknown aggregation 'median'"):
        GraphNetwork(aggregation="median").init(jax.random.PRNGKey(0), g)
    with pytest.raises(ConfigError, match="unknown GNN task"):
        GraphNetwork(task="edge").init(jax.random.PRNGKey(0), g)
    with pytest.raises(ConfigError, match="max_nodes > 2"):
        pad_graphs(g, max_nodes=2, max_edges=4, max_graphs=2)
    with pytest.raises(ShapeError, match="task='graph'"):
        fit_gnn(GraphNetwork(task="node"), g, jnp.zeros((1,), jnp.int32), jnp.ones((1,), bool), seed=0, num_steps=1)
    assert isinstance(g, GraphsTuple)
