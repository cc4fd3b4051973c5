"""Graph neural networks: the lectures' message passing on padded batches of graphs.

One message-passing step ``l`` (lecture 12, "Message Passing Networks") does

* node → edge: ``h_(i,j)^l = N_e([h_i^{l-1}, h_(i,j)^{l-1}, h_j^{l-1}])`` for every edge,
* edge → node: ``m_i^l = Φ({h_(i,j)^l : j ∈ N_i})`` with an order-invariant ``Φ`` (sum, mean, max),
  then ``h_i^l = N_v([m_i^l, h_i^{l-1}])``,

with MLPs ``N_e``, ``N_v`` shared across the whole graph. Edges are *directed*, stored as
``senders[e] → receivers[e]``; node ``i`` aggregates the edges it receives (its neighbours ``j`` are
their senders), so an undirected graph stores both directions.

Batches of graphs are one big disconnected graph (:class:`GraphsTuple`, like jraph's), padded to fixed
sizes so one compiled program serves every batch: :func:`pad_graphs` appends one padding graph that
owns all padding nodes and edges, and the masks keep padding out of every real node's output (padding
edges are zeroed before aggregation, padding nodes are zeroed after every update and left out of
read-outs).

>>> import jax, jax.numpy as jnp
>>> g = make_graph([0, 1, 2], [1, 2, 0], num_nodes=3, undirected=True)
>>> model = GraphNetwork(latent_size=8, num_steps=2, num_outputs=2, task="graph")
>>> params = model.init(jax.random.PRNGKey(0), g)
>>> model.apply(params, g).shape
(1, 2)
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.errors import ConfigError, ShapeError, unknown_name
from dlcore.nn._activations import get_activation

AGGREGATIONS = ("sum", "mean", "max")
GNN_TASKS = ("node", "graph")
GRAPH_FAMILIES = ("cycle", "path", "star")
"""Classes of :func:`synthetic_graph_classification` (label = index in this tuple)."""


class GraphsTuple(NamedTuple):
    """A batch of graphs stored as one disconnected graph (a pytree: jit/vmap/scan it freely).

    Attributes:
      nodes: ``[N, Dn]`` node features (all graphs' nodes, graph after graph).
      edges: ``[E, De]`` edge features.
      senders: ``int32[E]`` source node of each edge (a global node index).
      receivers: ``int32[E]`` target node of each edge; messages are aggregated here.
      n_node: ``int32[G]`` nodes per graph (sums to ``N``).
      n_edge: ``int32[G]`` edges per graph (sums to ``E``).
      node_mask: ``bool[N]`` True for real nodes, False for padding.
      edge_mask: ``bool[E]`` True for real edges.
      graph_mask: ``bool[G]`` True for real graphs (the padding graph is False).
    """

    nodes: jax.Array
    edges: jax.Array
    senders: jax.Array
    receivers: jax.Array
    n_node: jax.Array
    n_edge: jax.Array
    node_mask: jax.Array
    edge_mask: jax.Array
    graph_mask: jax.Array

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.senders.shape[0])

    @property
    def num_graphs(self) -> int:
        return int(self.n_node.shape[0])


def _concrete(x) -> np.ndarray | None:
    """The value of ``x`` as NumPy when it is concrete, None under tracing (jit/vmap/grad)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def validate_graph(graph: GraphsTuple) -> GraphsTuple:
    """Check shapes always, and indices too where the arrays are concrete (outside ``jit``).

    Raises:
      ShapeError: mismatched leading dimensions, an edge whose sender/receiver lies outside the
        node set ``[0, N)`` or in another graph of the batch, or ``n_node``/``n_edge`` that do not add
        up to the arrays' sizes.
    Returns:
      the graph, unchanged.

    >>> g = make_graph([0], [1], num_nodes=2)
    >>> validate_graph(g).num_edges
    1
    """
    if not isinstance(graph, GraphsTuple):
        raise ShapeError(f"expected a GraphsTuple, got {type(graph).__name__}; build one with make_graph/batch_graphs")
    nodes, edges = graph.nodes, graph.edges
    if nodes.ndim != 2 or edges.ndim != 2:
        raise ShapeError(
            f"nodes and edges must be 2-D [N, Dn] / [E, De], got {nodes.shape} / {edges.shape}; "
            "add a trailing feature axis (e.g. x[:, None])"
        )
    n, e, g = nodes.shape[0], graph.senders.shape, graph.n_node.shape
    for name, arr, want in (
        ("senders", graph.senders, (edges.shape[0],)),
        ("receivers", graph.receivers, (edges.shape[0],)),
        ("edge_mask", graph.edge_mask, (edges.shape[0],)),
        ("node_mask", graph.node_mask, (n,)),
        ("n_edge", graph.n_edge, g),
        ("graph_mask", graph.graph_mask, g),
    ):
        if tuple(arr.shape) != tuple(want):
            raise ShapeError(
                f"{name} has shape {tuple(arr.shape)} but the graph needs {tuple(want)} "
                f"(nodes {tuple(nodes.shape)}, edges {tuple(edges.shape)}, n_node {tuple(g)}); "
                "build graphs with make_graph/batch_graphs/pad_graphs"
            )
    if not jnp.issubdtype(graph.senders.dtype, jnp.integer) or not jnp.issubdtype(graph.receivers.dtype, jnp.integer):
        raise ShapeError(f"senders/receivers must be integer node indices, got {graph.senders.dtype}/{graph.receivers.dtype}")
    snd, rcv = _concrete(graph.senders), _concrete(graph.receivers)
    if snd is not None and rcv is not None and snd.size:
        for name, idx in (("senders", snd), ("receivers", rcv)):
            bad = np.flatnonzero((idx < 0) | (idx >= n))
            if bad.size:
                raise ShapeError(
                    f"edge {int(bad[0])} has {name[:-1]} {int(idx[bad[0]])} outside the node set [0, {n}) "
                    f"({bad.size} such edges); every edge must connect existing nodes: fix the edge list "
                    "or add the missing nodes"
                )
    n_node, n_edge = _concrete(graph.n_node), _concrete(graph.n_edge)
    if n_node is not None and n_edge is not None:
        if int(n_node.sum()) != n or int(n_edge.sum()) != e[0]:
            raise ShapeError(
                f"n_node sums to {int(n_node.sum())} and n_edge to {int(n_edge.sum())}, but the graph has "
                f"{n} nodes and {e[0]} edges; n_node/n_edge must count every node/edge (padding included)"
            )
        if snd is not None and rcv is not None and snd.size:
            node_graph = np.repeat(np.arange(len(n_node)), n_node)
            edge_graph = np.repeat(np.arange(len(n_edge)), n_edge)
            cross = np.flatnonzero((node_graph[snd] != edge_graph) | (node_graph[rcv] != edge_graph))
            if cross.size:
                k = int(cross[0])
                raise ShapeError(
                    f"edge {k} ({int(snd[k])} -> {int(rcv[k])}) belongs to graph {int(edge_graph[k])} but points "
                    f"outside that graph's node set; offset each graph's indices by the nodes before it "
                    "(batch_graphs does this)"
                )
    return graph


def _validate_input(graph: GraphsTuple, where: str) -> None:
    """:func:`validate_graph` on the host for a public entry point; its message prefixed with ``where``."""
    if isinstance(graph, GraphsTuple) and (_concrete(graph.senders) is None or _concrete(graph.receivers) is None):
        raise ShapeError(
            f"{where}: got traced edge indices (inside jit/vmap); build and pad graphs on the host, "
            "outside the compiled function, so their edges can be checked"
        )
    try:
        validate_graph(graph)
    except ShapeError as e:
        raise ShapeError(f"{where}: {e}") from None


def index_error(graph: GraphsTuple) -> jax.Array:
    """``bool[]``, traceable: True if a real edge points outside ``[0, N)`` or outside its own graph.

    The in-graph twin of :func:`validate_graph` for when indices are traced: under ``jit`` a gather
    clamps an out-of-range index and a scatter drops it, so a bad edge would silently give wrong
    numbers; :class:`GraphNetwork` turns its whole output into NaN instead.

    >>> g = make_graph([0], [1], num_nodes=2)
    >>> bool(index_error(g)), bool(jax.jit(index_error)(g._replace(receivers=jnp.array([2]))))
    (False, True)
    """
    n = graph.num_nodes
    snd, rcv = graph.senders, graph.receivers
    out_of_range = (snd < 0) | (snd >= n) | (rcv < 0) | (rcv >= n)
    node_graph = node_graph_index(graph)
    edge_graph = jnp.repeat(jnp.arange(graph.num_graphs), graph.n_edge, total_repeat_length=graph.num_edges)
    safe = lambda i: jnp.clip(i, 0, n - 1)  # noqa: E731
    crosses = (node_graph[safe(snd)] != edge_graph) | (node_graph[safe(rcv)] != edge_graph)
    # n_node/n_edge that do not add up make the graph ids above meaningless: an error too
    counts = (jnp.sum(graph.n_node) != n) | (jnp.sum(graph.n_edge) != graph.num_edges)
    return jnp.any(graph.edge_mask & (out_of_range | crosses)) | counts


def make_graph(
    senders: Sequence[int] | np.ndarray,
    receivers: Sequence[int] | np.ndarray,
    num_nodes: int,
    nodes: np.ndarray | jax.Array | None = None,
    edges: np.ndarray | jax.Array | None = None,
    undirected: bool = False,
) -> GraphsTuple:
    """One graph (``G = 1``) from an edge list, validated.

    Args:
      senders, receivers: ``[E]`` node indices in ``[0, num_nodes)``.
      num_nodes: ``N``.
      nodes: ``[N, Dn]`` features (default: ones ``[N, 1]``, i.e. only the structure is informative).
      edges: ``[E, De]`` features (default: ones ``[E, 1]``).
      undirected: also add every edge reversed (features duplicated), so messages flow both ways.
    Returns:
      a :class:`GraphsTuple` with all masks True.
    Raises:
      ShapeError: an index outside ``[0, num_nodes)``, or feature arrays of the wrong length.

    >>> make_graph([0, 1], [1, 2], num_nodes=3, undirected=True).senders.tolist()
    [0, 1, 1, 2]
    """
    snd = np.asarray(senders, dtype=np.int64).reshape(-1)
    rcv = np.asarray(receivers, dtype=np.int64).reshape(-1)
    if snd.shape != rcv.shape:
        raise ShapeError(f"senders {snd.shape} and receivers {rcv.shape} must have the same length")
    if int(num_nodes) <= 0:
        raise ConfigError(f"num_nodes must be positive, got {num_nodes}")
    nodes = jnp.ones((num_nodes, 1), jnp.float32) if nodes is None else jnp.asarray(nodes, jnp.float32)
    edges = jnp.ones((snd.size, 1), jnp.float32) if edges is None else jnp.asarray(edges, jnp.float32)
    if nodes.shape[0] != num_nodes:
        raise ShapeError(f"nodes has {nodes.shape[0]} rows but num_nodes={num_nodes}")
    if edges.shape[0] != snd.size:
        raise ShapeError(f"edges has {edges.shape[0]} rows but there are {snd.size} edges")
    if undirected:
        snd, rcv = np.concatenate([snd, rcv]), np.concatenate([rcv, snd])
        edges = jnp.concatenate([edges, edges], axis=0)
    graph = GraphsTuple(
        nodes=nodes,
        edges=edges,
        senders=jnp.asarray(snd, jnp.int32),
        receivers=jnp.asarray(rcv, jnp.int32),
        n_node=jnp.array([num_nodes], jnp.int32),
        n_edge=jnp.array([snd.size], jnp.int32),
        node_mask=jnp.ones((num_nodes,), bool),
        edge_mask=jnp.ones((snd.size,), bool),
        graph_mask=jnp.ones((1,), bool),
    )
    return validate_graph(graph)


def batch_graphs(graphs: Sequence[GraphsTuple]) -> GraphsTuple:
    """Concatenate graphs into one disconnected graph, offsetting each graph's node indices.

    >>> a = make_graph([0], [1], num_nodes=2)
    >>> b = batch_graphs([a, a])
    >>> b.senders.tolist(), b.receivers.tolist(), b.n_node.tolist()
    ([0, 2], [1, 3], [2, 2])
    """
    if not graphs:
        raise ConfigError("batch_graphs needs at least one graph")
    # On the host, before anything is traced: a bad edge named in its own graph's numbering.
    for i, g in enumerate(graphs):
        _validate_input(g, f"batch_graphs: graph {i} of {len(graphs)}")
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs[:-1]])
    return validate_graph(
        GraphsTuple(
            nodes=jnp.concatenate([g.nodes for g in graphs], axis=0),
            edges=jnp.concatenate([g.edges for g in graphs], axis=0),
            senders=jnp.concatenate([g.senders + int(o) for g, o in zip(graphs, offsets)]),
            receivers=jnp.concatenate([g.receivers + int(o) for g, o in zip(graphs, offsets)]),
            n_node=jnp.concatenate([g.n_node for g in graphs]),
            n_edge=jnp.concatenate([g.n_edge for g in graphs]),
            node_mask=jnp.concatenate([g.node_mask for g in graphs]),
            edge_mask=jnp.concatenate([g.edge_mask for g in graphs]),
            graph_mask=jnp.concatenate([g.graph_mask for g in graphs]),
        )
    )


def pad_graphs(graph: GraphsTuple, max_nodes: int, max_edges: int, max_graphs: int) -> GraphsTuple:
    """Pad to fixed sizes with one extra *padding graph* that owns every padding node and edge.

    Padding edges connect the first padding node to itself and padding features are zero; the
    masks mark them, and :class:`GraphNetwork` never lets them reach a real node.

    Args:
      graph: a (batched) graph with ``N`` nodes, ``E`` edges, ``G`` graphs.
      max_nodes: ``> N`` (at least one padding node).
      max_edges: ``>= E``.
      max_graphs: ``> G`` (room for the padding graph).
    Returns:
      a graph with exactly ``max_nodes`` nodes, ``max_edges`` edges and ``max_graphs`` graphs.

    >>> g = pad_graphs(make_graph([0], [1], num_nodes=2), 4, 3, 3)
    >>> g.n_node.tolist(), g.node_mask.tolist(), g.graph_mask.tolist()
    ([2, 2, 0], [True, True, False, False], [True, False, False])
    """
    _validate_input(graph, "pad_graphs")
    n, e, g = graph.num_nodes, graph.num_edges, graph.num_graphs
    if max_nodes <= n or max_edges < e or max_graphs <= g:
        raise ConfigError(
            f"cannot pad a batch of {g} graphs / {n} nodes / {e} edges to max_graphs={max_graphs}, "
            f"max_nodes={max_nodes}, max_edges={max_edges}: padding needs max_nodes > {n}, "
            f"max_edges >= {e} and max_graphs > {g} (one padding graph owns the padding)"
        )
    pn, pe, pg = max_nodes - n, max_edges - e, max_graphs - g
    pad_rows = lambda x, k: jnp.concatenate([x, jnp.zeros((k,) + x.shape[1:], x.dtype)], axis=0)
    n_node = jnp.concatenate([graph.n_node, jnp.array([pn] + [0] * (pg - 1), jnp.int32)])
    n_edge = jnp.concatenate([graph.n_edge, jnp.array([pe] + [0] * (pg - 1), jnp.int32)])
    return GraphsTuple(
        nodes=pad_rows(graph.nodes, pn),
        edges=pad_rows(graph.edges, pe),
        senders=jnp.concatenate([graph.senders, jnp.full((pe,), n, jnp.int32)]),
        receivers=jnp.concatenate([graph.receivers, jnp.full((pe,), n, jnp.int32)]),
        n_node=n_node,
        n_edge=n_edge,
        node_mask=pad_rows(graph.node_mask, pn),
        edge_mask=pad_rows(graph.edge_mask, pe),
        graph_mask=pad_rows(graph.graph_mask, pg),
    )


def node_graph_index(graph: GraphsTuple) -> jax.Array:
    """``int32[N]``: the graph each node belongs to (jittable: the total length is static)."""
    return jnp.repeat(jnp.arange(graph.num_graphs), graph.n_node, total_repeat_length=graph.num_nodes)


def segment_aggregate(
    data_ExD: jax.Array,
    segment_ids_E: jax.Array,
    num_segments: int,
    aggregation: str = "sum",
    mask_E: jax.Array | None = None,
) -> jax.Array:
    """Order-invariant ``Φ`` over segments: ``out[s] = Φ({data[e] : segment_ids[e] = s, mask[e]})``.

    Args:
      data_ExD: ``[E, D]`` values (edge messages, or node embeddings for a read-out).
      segment_ids_E: ``int[E]`` segment of each row (e.g. ``receivers``).
      num_segments: static number of segments (e.g. ``N``).
      aggregation: ``"sum"``, ``"mean"`` or ``"max"``.
      mask_E: ``bool[E]``; masked rows are left out (padding).
    Returns:
      ``[num_segments, D]``; empty segments give 0 for every aggregation (not ``-inf`` for max).

    >>> import jax.numpy as jnp
    >>> d = jnp.array([[1.0], [3.0], [5.0]])
    >>> segment_aggregate(d, jnp.array([0, 0, 2]), 3, "mean")[:, 0].tolist()
    [2.0, 0.0, 5.0]
    """
    if aggregation not in AGGREGATIONS:
        raise unknown_name("aggregation", aggregation, AGGREGATIONS)
    mask = jnp.ones(segment_ids_E.shape, bool) if mask_E is None else mask_E.astype(bool)
    m = mask[:, None]
    if aggregation == "max":
        data = jnp.where(m, data_ExD, -jnp.inf)
        out = jax.ops.segment_max(data, segment_ids_E, num_segments)
        # Empty segments (isolated or padding nodes) come back as -inf: make them 0.
        return jnp.where(jnp.isfinite(out), out, 0.0)
    total = jax.ops.segment_sum(jnp.where(m, data_ExD, 0.0), segment_ids_E, num_segments)
    if aggregation == "sum":
        return total
    count = jax.ops.segment_sum(mask.astype(data_ExD.dtype), segment_ids_E, num_segments)
    return total / jnp.maximum(count, 1.0)[:, None]


class _UpdateMLP(nn.Module):
    """``Dense -> act`` per width: the shared update functions ``N_e`` and ``N_v``."""

    widths: Sequence[int]
    activation: str | Callable = "relu"

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        for i, w in enumerate(self.widths):
            x = act(nn.Dense(int(w), name=f"dense_{i}")(x))
        return x


class MessagePassing(nn.Module):
    """One message-passing step: node → edge update, aggregation, edge → node update.

    Attributes:
      edge_widths: widths of ``N_e`` (the last is the new edge size).
      node_widths: widths of ``N_v`` (the last is the new node size).
      aggregation: ``Φ``: ``"sum"``, ``"mean"`` or ``"max"``.
      activation: name or callable, after every layer of both MLPs.

    Call: ``step.apply(params, graph)`` → the graph with new ``nodes [N, node_widths[-1]]`` and
    ``edges [E, edge_widths[-1]]`` (padding rows zero).
    """

    edge_widths: Sequence[int] = (32,)
    node_widths: Sequence[int] = (32,)
    aggregation: str = "sum"
    activation: str | Callable = "relu"

    @nn.compact
    def __call__(self, graph: GraphsTuple) -> GraphsTuple:
        if self.aggregation not in AGGREGATIONS:
            raise unknown_name("aggregation", self.aggregation, AGGREGATIONS)
        h_v, h_e = graph.nodes, graph.edges
        # Node -> edge: the lectures' [h_i, h_(i,j), h_j] with i the receiving (updated) node.
        edge_in = jnp.concatenate([h_v[graph.receivers], h_e, h_v[graph.senders]], axis=-1)
        h_e = _UpdateMLP(self.edge_widths, self.activation, name="edge_mlp")(edge_in)
        h_e = jnp.where(graph.edge_mask[:, None], h_e, 0.0)  # padding edges carry nothing
        # Edge -> node: aggregate incoming edges, then update from [m_i, h_i].
        m_v = segment_aggregate(h_e, graph.receivers, graph.num_nodes, self.aggregation, graph.edge_mask)
        h_v = _UpdateMLP(self.node_widths, self.activation, name="node_mlp")(jnp.concatenate([m_v, h_v], axis=-1))
        h_v = jnp.where(graph.node_mask[:, None], h_v, 0.0)
        return graph._replace(nodes=h_v, edges=h_e)


class GraphNetwork(nn.Module):
    """Encode → ``num_steps`` message-passing steps → decode per node or per graph.

    Attributes:
      latent_size: width of node/edge embeddings and of every update MLP layer.
      num_steps: message-passing steps (each with its own weights); node ``i`` sees its
        ``num_steps``-hop neighbourhood.
      num_outputs: classes (logits) or regression targets.
      task: ``"node"`` (an output per node) or ``"graph"`` (read-out over each graph's nodes).
      aggregation: ``Φ`` of the message passing.
      readout: aggregation of node embeddings into a graph embedding (graph task).
      mlp_depth: layers per update MLP.
      activation: name or callable.

    Call: ``model.apply(params, graph, train=False)`` → ``[N, num_outputs]`` (node task; padding rows
    zero) or ``[G, num_outputs]`` (graph task; the padding graph's row is zero). ``train`` is
    accepted for the dlcore model convention and unused (no dropout/batch norm). Edge indices are
    checked on the host when concrete (a :class:`ShapeError`); under ``jit`` they are traced, and an
    edge outside the node set or its graph (:func:`index_error`) makes *every* output NaN.
    """

    latent_size: int = 32
    num_steps: int = 2
    num_outputs: int = 2
    task: str = "node"
    aggregation: str = "sum"
    readout: str = "sum"
    mlp_depth: int = 1
    activation: str | Callable = "relu"

    @nn.compact
    def __call__(self, graph: GraphsTuple, train: bool = False) -> jax.Array:
        if self.task not in GNN_TASKS:
            raise unknown_name("GNN task", self.task, GNN_TASKS)
        if self.readout not in AGGREGATIONS:
            raise unknown_name("readout", self.readout, AGGREGATIONS)
        if self.latent_size <= 0 or self.num_steps < 0 or self.num_outputs <= 0 or self.mlp_depth <= 0:
            raise ConfigError(
                f"GraphNetwork needs latent_size, num_outputs, mlp_depth > 0 and num_steps >= 0, got "
                f"{self.latent_size}, {self.num_outputs}, {self.mlp_depth}, {self.num_steps}"
            )
        validate_graph(graph)
        act = get_activation(self.activation)
        widths = (self.latent_size,) * self.mlp_depth
        g = graph._replace(
            nodes=jnp.where(graph.node_mask[:, None], act(nn.Dense(self.latent_size, name="node_encoder")(graph.nodes)), 0.0),
            edges=jnp.where(graph.edge_mask[:, None], act(nn.Dense(self.latent_size, name="edge_encoder")(graph.edges)), 0.0),
        )
        for step in range(self.num_steps):
            g = MessagePassing(widths, widths, self.aggregation, self.activation, name=f"step_{step}")(g)
        # Traced indices were not checked above: a bad edge makes every output NaN, never a silent number.
        poison = jnp.where(index_error(graph), jnp.nan, 0.0)
        if self.task == "node":
            out = nn.Dense(self.num_outputs, name="node_decoder")(g.nodes)
            return jnp.where(graph.node_mask[:, None], out, 0.0) + poison
        pooled = segment_aggregate(g.nodes, node_graph_index(graph), graph.num_graphs, self.readout, graph.node_mask)
        out = nn.Dense(self.num_outputs, name="graph_decoder")(act(nn.Dense(self.latent_size, name="graph_hidden")(pooled)))
        return jnp.where(graph.graph_mask[:, None], out, 0.0) + poison


# ----------------------------------------------------------------------------- data


def karate_club() -> tuple[GraphsTuple, jax.Array]:
    """Zachary's karate club (networkx): 34 members, 78 friendships (both directions), 2 clubs.

    Node features are one-hot identities (``[34, 34]``), as in Kipf & Welling's GCN experiment, so
    anything beyond memorising the labelled nodes comes from the graph structure.

    Returns:
      ``(graph, labels)``: labels ``int32[34]``, 0 = "Mr. Hi", 1 = "Officer".

    >>> g, y = karate_club()
    >>> g.num_nodes, g.num_edges, int(y[0]), int(y[33])
    (34, 156, 0, 1)
    """
    import networkx as nx

    kc = nx.karate_club_graph()
    snd, rcv = np.array(list(kc.edges())).T
    labels = np.array([0 if kc.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(kc.number_of_nodes())])
    n = kc.number_of_nodes()
    graph = make_graph(snd, rcv, n, nodes=np.eye(n, dtype=np.float32), undirected=True)
    return graph, jnp.asarray(labels, jnp.int32)


def _family_edges(family: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n)
    if family == 0:  # cycle: every node has degree 2
        return i, (i + 1) % n
    if family == 1:  # path: two ends of degree 1
        return i[:-1], i[1:]
    return np.zeros(n - 1, np.int64), i[1:]  # star: one hub of degree n-1


def synthetic_graph_classification(
    key: jax.Array, num_graphs: int, min_nodes: int = 4, max_nodes: int = 10
) -> tuple[GraphsTuple, jax.Array]:
    """Graphs of three families (:data:`GRAPH_FAMILIES`: cycle, path, star) of random sizes.

    Node and edge features are constant, so only the structure tells the families apart (a sum
    aggregation can count degrees; a mean over identical messages cannot).

    Args:
      key: draws each graph's family and size.
      num_graphs: ``G``.
      min_nodes, max_nodes: sizes are uniform in ``[min_nodes, max_nodes]`` (``min_nodes >= 3``).
    Returns:
      ``(graph, labels)``: a batched, undirected, unpadded graph and ``int32[G]`` family labels.

    >>> import jax
    >>> g, y = synthetic_graph_classification(jax.random.PRNGKey(0), 5)
    >>> g.num_graphs, y.shape
    (5, (5,))
    """
    if min_nodes < 3 or max_nodes < min_nodes or num_graphs <= 0:
        raise ConfigError(
            f"need num_graphs > 0 and 3 <= min_nodes <= max_nodes, got {num_graphs}, {min_nodes}, {max_nodes}"
        )
    k_family, k_size = jax.random.split(key)
    families = np.asarray(jax.random.randint(k_family, (num_graphs,), 0, len(GRAPH_FAMILIES)))
    sizes = np.asarray(jax.random.randint(k_size, (num_graphs,), min_nodes, max_nodes + 1))
    graphs = [make_graph(*_family_edges(int(f), int(n)), num_nodes=int(n), undirected=True) for f, n in zip(families, sizes)]
    return batch_graphs(graphs), jnp.asarray(families, jnp.int32)


# ----------------------------------------------------------------------------- training
