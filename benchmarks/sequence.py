"""Sequence models: training steps/s of dlcore's RNN cells and Transformer LM on a character LM.

Same task for every model: next-character prediction on windows of the Zen of Python (batch 32,
length 32, hidden/d_model 64), Adam with gradient clipping, the whole run one compiled
``lax.scan`` of dlcore's train step. Also Flax's own ``OptimizedLSTMCell`` under ``nn.RNN`` as a
reference for the LSTM (ratio dlcore LSTM / Flax LSTM, measured within each round; the machine
is noisy, so compare ratios, not absolute times across runs).

    .venv/bin/python benchmarks/sequence.py [--steps 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.nn import RNNModel, TransformerLM
from dlcore.tasks import char_lm_dataset, load_text, sequence_recipe
from dlcore.train import init_state, make_train_step

B, T, H = 32, 32, 64


class FlaxLSTMLM(nn.Module):
    """Reference: one-hot characters -> Flax's OptimizedLSTMCell under nn.RNN -> per-step logits."""

    vocab_size: int
    hidden: int

    @nn.compact
    def __call__(self, tokens, train: bool = False):
        x = jax.nn.one_hot(tokens, self.vocab_size)
        y = nn.RNN(nn.OptimizedLSTMCell(self.hidden))(x)
        return nn.Dense(self.vocab_size)(y)


def models(vocab: int) -> dict[str, nn.Module]:
    rnn = lambda cell: RNNModel(hidden_size=H, num_outputs=vocab, cell=cell, head="many_to_many", vocab_size=vocab)  # noqa: E731
    return {
        "rnn": rnn("rnn"),
        "gru": rnn("gru"),
        "lstm": rnn("lstm"),
        "flax_lstm": FlaxLSTMLM(vocab, H),
        "transformer": TransformerLM(vocab_size=vocab, d_model=H, num_heads=4, num_layers=2, d_ff=4 * H, max_len=T),
    }


def compile_run(model, data, steps: int):
    recipe = sequence_recipe(model)
    step = make_train_step(recipe)

    @jax.jit
    def run(state, x, y):
        def body(s, i):
            idx = jax.random.randint(jax.random.fold_in(s.keys["data"], i), (B,), 0, x.shape[0])
            return step(s, {"x": x[idx], "y": y[idx]})

        return jax.lax.scan(body, state, jnp.arange(steps))

    state = init_state(recipe, 0, {"learning_rate": 3e-3}, data.x_train[:1])
    t0 = time.perf_counter()
    compiled = run.lower(state, data.x_train, data.y_train).compile()
    compile_s = time.perf_counter() - t0
    return compiled, state, compile_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data, vocab = char_lm_dataset(load_text("zen"), T, stride=1)
    print(f"char LM on the Zen of Python: vocab {vocab.size}, {data.x_train.shape[0]} windows, B={B}, T={T}, H={H}")
    runs = {}
    for name, model in models(vocab.size).items():
        runs[name] = compile_run(model, data, args.steps)
        print(f"  compiled {name:12s} in {runs[name][2]:.1f} s")
    rates: dict[str, list[float]] = {name: [] for name in runs}
    losses = {}
    for _ in range(args.rounds):  # interleaved, so every model sees the same machine noise
        for name, (fn, state, _) in runs.items():
            t0 = time.perf_counter()
            _, m = fn(state, data.x_train, data.y_train)
            jax.block_until_ready(m["loss"])
            rates[name].append(args.steps / (time.perf_counter() - t0))
            losses[name] = np.asarray(m["loss"])
    print(f"{'model':12s} {'steps/s (median)':>17s} {'first loss':>11s} {'last loss':>10s}")
    for name, r in rates.items():
        print(f"{name:12s} {np.median(r):17.0f} {losses[name][:10].mean():11.3f} {losses[name][-10:].mean():10.3f}")
    ratio = [a / b for a, b in zip(rates["lstm"], rates["flax_lstm"])]
    print(f"dlcore LSTM / Flax OptimizedLSTMCell steps/s per round: {', '.join(f'{x:.2f}' for x in ratio)}"
          f" (median {np.median(ratio):.2f})")
    tr = [a / b for a, b in zip(rates["transformer"], rates["lstm"])]
    print(f"Transformer LM / dlcore LSTM steps/s per round: {', '.join(f'{x:.2f}' for x in tr)}"
          f" (median {np.median(tr):.2f})")


if __name__ == "__main__":
    main()
