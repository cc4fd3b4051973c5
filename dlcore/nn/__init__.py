"""Neural-network building blocks (Flax Linen modules with an explicit ``train`` flag)."""

from dlcore.nn._activations import ACTIVATIONS, get_activation
from dlcore.nn._conv_matmul import conv_as_matmul, patch_conv
from dlcore.nn._dropout import Dropout, dropout
from dlcore.nn._mlp import MLP, NORMS

# Sequence models: recurrent cells and wrappers, attention, Transformers.
from dlcore.nn._attention import (  # noqa: E402
    POSITIONAL_KINDS,
    MultiHeadAttention,
    PositionalEncoding,
    causal_mask,
    combine_masks,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
)
from dlcore.nn._rnn import (  # noqa: E402
    CELLS,
    HEADS,
    RECURRENT_INITS,
    GRUCell,
    LSTMCarry,
    LSTMCell,
    Recurrent,
    RNNModel,
    SimpleRNNCell,
    StackedRNN,
    final_hidden,
    hidden_of,
    make_cell,
    recurrent_initializer,
)
from dlcore.nn._transformer import (  # noqa: E402
    DecoderBlock,
    EncoderBlock,
    FeedForward,
    Seq2SeqTransformer,
    TransformerLM,
    greedy_decode,
)

# Building blocks: activations, initializers, norms, regularization, conv sizes, ensembles, transfer.
from dlcore.nn._activations import (  # noqa: E402
    PARAMETRIC_ACTIVATIONS,
    Activation,
    Maxout,
    PReLU,
    elu,
    gelu,
    identity,
    leaky_relu,
    relu,
    sigmoid,
    softmax,
    step,
    swish,
    tanh,
)
from dlcore.nn._conv_utils import (  # noqa: E402
    chain_output_size,
    conv_output_size,
    min_input_size,
    pool_output_size,
    same_padding,
    transposed_conv_output_size,
)
from dlcore.nn._ensemble import (  # noqa: E402
    Ensemble,
    bagged_dataset,
    bootstrap_counts,
    bootstrap_indices,
    ensemble_loss,
    ensemble_metrics,
    ensemble_predict,
    mc_dropout_predict,
    member_variables,
    stack_members,
)
from dlcore.nn._init import (  # noqa: E402
    INITIALIZERS,
    RELU_BIAS,
    expected_variance,
    fans,
    get_initializer,
    init_kwargs,
    reinitialize,
)
from dlcore.nn._norm import NORM_NAMES, POSITIONS, Norm, NormAct, batch_stats, bn_running_update  # noqa: E402
from dlcore.nn._regularization import DropConnectDense, drop_connect, plain_dropout, weight_scaling_rule  # noqa: E402
from dlcore.nn._deterministic import STOCHASTIC_LAYERS, deterministic  # noqa: E402
from dlcore.nn._transfer import (  # noqa: E402
    Group,
    fine_tune_fn,
    freeze,
    param_mask,
    param_paths,
    scale_lr,
    transfer_params,
)

# Graph neural networks: message passing on padded batches of graphs.
from dlcore.nn._gnn import (  # noqa: E402
    AGGREGATIONS,
    GNN_TASKS,
    GRAPH_FAMILIES,
    GraphNetwork,
    GraphsTuple,
    MessagePassing,
    batch_graphs,
    index_error,
    karate_club,
    make_graph,
    node_graph_index,
    pad_graphs,
    segment_aggregate,
    synthetic_graph_classification,
    validate_graph,
)
