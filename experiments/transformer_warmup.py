"""Transformer warmup: post-norm Transformers trained without learning-rate warmup train worse.

The lectures (the Transformer's schedule): the original post-norm block ``LN(x + f(x))`` has large
gradients near the output at initialization, and Adam's early steps (noisy second-moment
estimates) at the full rate can push it into a bad region; a linear warmup avoids that, and
pre-norm blocks ``x + f(LN(x))`` need it less (Xiong et al. 2020). Model ``seq_transformer``
(``dlcore.models.SequenceTransformer1D``): MNIST-1D read as 40 steps, d_model 16, 2 heads, 4
blocks, mean-pooled, Adam, 2000 steps (sized for 2 CPU cores; a wider model:
``--config.model.d_model=32 --config.model.num_heads=4 --config.model.d_ff=64``). Axes: norm (post /
pre, structural), schedule (cosine decay without and with a 300-step warmup, structural) and the
peak learning rate (3e-3, 1e-2, vectorized). Checks: for post-norm at both peak rates, warmup gives
a higher validation accuracy than none. Run:

    dlcore run transformer_warmup
    dlcore report runs/transformer_warmup/<timestamp>

Faster look: dlcore run transformer_warmup --config.num_steps=1000 --config.sweep.seeds=4
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(optimizer=dict(schedule="cosine"), num_steps=2000)
    c.model = ml_collections.ConfigDict(dict(name="seq_transformer", d_model=16, num_heads=2, d_ff=32, num_layers=4,
                                             norm_first=False))
    c.optimizer.schedule_kwargs = ml_collections.ConfigDict(dict(
        cosine=dict(),
        cosine_warmup=dict(schedule="cosine", warmup_steps=300),
    ))
    c.sweep = study(
        dict(
            norm_first=dict(path="model.norm_first", values=(False, True)),
            schedule=dict(path="optimizer.schedule", values=("cosine", "cosine_warmup")),
            learning_rate=dict(values=(3e-3, 1e-2)),
        ),
        select=dict(group_by=("norm_first", "schedule")),
    )
    pair = ("val/accuracy: norm_first=False schedule=cosine_warmup learning_rate={0} > "
            "norm_first=False schedule=cosine learning_rate={0}")
    c.claim = dict(
        text="Without warmup a post-norm Transformer trains worse (at peak rates 3e-3 and 1e-2)",
        checks=(pair.format(0.003), pair.format(0.01)),
    )
    return c
