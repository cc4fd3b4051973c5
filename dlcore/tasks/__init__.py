"""Sequence tasks: character-level language models with temperature sampling, the adding problem
and copy task (controllable lag), reversal/sorting translation, MNIST-1D as a sequence, and the
losses/recipes that train sequence models with dlcore's train loop; GNN classifiers trained on
the common train state and step."""

from dlcore.tasks._graphs import fit_gnn, gnn_recipe

from dlcore.tasks._losses import (
    TASK_KINDS,
    regression_loss,
    regression_metrics,
    sequence_loss,
    sequence_metrics,
    sequence_recipe,
    token_cross_entropy,
)
from dlcore.tasks._synthetic import (
    BOS_ID,
    PAD_ID,
    SYNTHETIC_TASKS,
    TRANSLATION_KINDS,
    adding_problem,
    copy_task,
    copy_task_baseline,
    mnist1d_sequences,
    synthetic_dataset,
    translation_task,
)
from dlcore.tasks._text import (
    HELLO,
    TEXTS,
    Vocab,
    build_vocab,
    char_lm_dataset,
    generate_text,
    hello_example,
    load_text,
    sample_logits,
    sample_tokens,
)
