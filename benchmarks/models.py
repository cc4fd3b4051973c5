"""The CNN zoo at small sizes: forward+backward steps/s and compiled memory, and dlcore's ResNet
block against a minimal hand-written Flax block of the same shape (the overhead ratio).

A step is ``value_and_grad`` of the mean cross-entropy (per-pixel for FCN/U-Net) plus an SGD
update, batch-norm statistics updated, jitted with the state donated. Memory is XLA's own
accounting of the compiled step (``compiled.memory_analysis()``): ``temp`` (activations and
scratch) and ``peak ≈ arguments + outputs + temp − aliased``. Runs are interleaved and repeated;
compare ratios measured in one run (this machine is noisy), not absolute times across runs.

    .venv/bin/python benchmarks/models.py [--rounds 3] [--seconds 1.0] [--only resnet18,unet]
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlcore.models import (
    FCN,
    VGG,
    AlexNet,
    BasicBlock,
    ConvBase1D,
    ConvNeXt,
    InceptionModule,
    LeNet5,
    ResNet,
    SimpleCNN,
    UNet,
    XceptionBlock,
    pixel_cross_entropy,
)


class HandBasicBlock(nn.Module):
    """The minimal Flax ResNet basic block (identity shortcut): the baseline for dlcore's."""

    features: int

    @nn.compact
    def __call__(self, x, train: bool):
        bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)  # noqa: E731
        h = nn.relu(bn()(nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)(x)))
        h = bn()(nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)(h))
        return nn.relu(h + x)


class HandBasicBlockDlcoreOrder(nn.Module):
    """The same hand-written block, with submodules named so the parameters flatten in dlcore's
    order (conv, norm, conv, norm). Same HLO as the other two up to parameter order; on XLA:CPU
    the order alone moved speed by ~15-20% in our runs (schedule / buffer placement)."""

    features: int

    @nn.compact
    def __call__(self, x, train: bool):
        bn = lambda n: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=n)  # noqa: E731
        conv = lambda n: nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, name=n)  # noqa: E731
        h = nn.relu(bn("a2_bn")(conv("a1_conv")(x)))
        h = bn("b2_bn")(conv("b1_conv")(h))
        return nn.relu(h + x)


class Head(nn.Module):
    """Block → global average pool → linear, so a block can be trained as a classifier."""

    block: nn.Module
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool):
        h = self.block(x, train)
        return nn.Dense(self.num_classes)(jnp.mean(h, axis=(1, 2)))


def cases() -> dict[str, tuple[nn.Module, tuple, str]]:
    """name → (model, input shape, task) at small sizes."""
    return {
        "lenet5": (LeNet5(), (64, 32, 32, 1), "cls"),
        "alexnet_small": (AlexNet(channels=(24, 64, 96, 96, 64), hidden=(256, 256), num_classes=10),
                          (32, 67, 67, 3), "cls"),
        "vgg11_small": (VGG(depth=11, widths=(16, 32, 64, 64, 64), hidden=(128, 128), num_classes=10),
                        (32, 32, 32, 3), "cls"),
        "vgg16_small": (VGG(depth=16, widths=(16, 32, 64, 64, 64), hidden=(128, 128), num_classes=10),
                        (32, 32, 32, 3), "cls"),
        "resnet18_small": (ResNet(depth=18, width=16, stem="cifar", num_classes=10), (32, 32, 32, 3), "cls"),
        "plain18_small": (ResNet(depth=18, width=16, stem="cifar", residual=False, num_classes=10),
                          (32, 32, 32, 3), "cls"),
        "resnet50_small": (ResNet(depth=50, width=8, stem="cifar", num_classes=10), (32, 32, 32, 3), "cls"),
        "convnext_small": (ConvNeXt(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), num_classes=10),
                           (32, 32, 32, 3), "cls"),
        "inception_module": (Head(InceptionModule(16, 24, 32, 4, 8, 8, norm="batch")), (32, 16, 16, 64), "cls"),
        "xception_block": (Head(XceptionBlock(64, strides=2)), (32, 16, 16, 32), "cls"),
        "simple_cnn_digits": (SimpleCNN(channels=(16, 32), num_classes=10), (64, 8, 8, 1), "cls"),
        "mnist1d_convbase": (ConvBase1D(), (100, 40), "cls"),
        "fcn_small": (FCN(num_classes=3, widths=(16, 32, 64), head_width=64), (16, 32, 32, 1), "seg"),
        "unet_small": (UNet(num_classes=2, features=8, depth=3), (16, 32, 32, 1), "seg"),
    }


def make_step(model: nn.Module, task: str, lr: float = 1e-2):
    tx = optax.sgd(lr)

    def loss_fn(params, state, x, y, key):
        out, new_state = model.apply({"params": params, **state}, x, train=True, mutable=list(state),
                                     rngs={"dropout": key})
        if task == "seg":
            loss = jnp.mean(pixel_cross_entropy(out, y))
        else:
            loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))
        return loss, new_state

    def step(carry, x, y):
        params, state, opt, key = carry
        key, dkey = jax.random.split(key)
        (loss, state), g = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y, dkey)
        upd, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, upd), state, opt, key), loss

    return tx, step


def setup(model: nn.Module, shape: tuple, task: str, seed: int = 0):
    key = jax.random.PRNGKey(seed)
    x = jax.random.normal(key, shape)
    if task == "seg":
        y = (x[..., 0] > 0).astype(jnp.int32)
    else:
        y = jax.random.randint(jax.random.fold_in(key, 1), (shape[0],), 0, 10)
    variables = dict(jax.jit(lambda k: model.init(k, x, train=False))(key))
    params = variables.pop("params")
    tx, step = make_step(model, task)
    carry = (params, variables, tx.init(params), jax.random.fold_in(key, 2))
    jitted = jax.jit(step, donate_argnums=(0,))
    t0 = time.perf_counter()
    compiled = jitted.lower(carry, x, y).compile()
    compile_s = time.perf_counter() - t0
    return compiled, carry, x, y, compile_s


def memory(compiled) -> tuple[float, float]:
    """(temp MiB, peak MiB) from XLA's accounting of the compiled step."""
    m = compiled.memory_analysis()
    if m is None:
        return float("nan"), float("nan")
    temp = m.temp_size_in_bytes
    peak = m.argument_size_in_bytes + m.output_size_in_bytes + temp - m.alias_size_in_bytes
    return temp / 2**20, peak / 2**20


def time_steps(compiled, carry, x, y, seconds: float):
    """Steps/s over about ``seconds`` of back-to-back steps (after one warm-up step)."""
    carry, loss = compiled(carry, x, y)
    loss.block_until_ready()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(5):
            carry, loss = compiled(carry, x, y)
        n += 5
        loss.block_until_ready()
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return carry, n / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per model per round")
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args()

    print(f"jax {jax.__version__}, device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    zoo = cases()
    names = [n for n in zoo if not args.only or n in args.only.split(",")]

    # ---- the zoo ------------------------------------------------------------------------------
    prepared = {}
    for name in names:
        model, shape, task = zoo[name]
        compiled, carry, x, y, compile_s = setup(model, shape, task)
        n_params = sum(a.size for a in jax.tree.leaves(carry[0]))
        prepared[name] = [compiled, carry, x, y, compile_s, n_params, []]
    for _ in range(args.rounds):
        for name in names:
            p = prepared[name]
            p[1], sps = time_steps(p[0], p[1], p[2], p[3], args.seconds)
            p[6].append(sps)
    print(f"\n{'model':<20} {'input':<18} {'params':>10} {'compile s':>9} {'steps/s':>9} "
          f"{'img/s':>9} {'temp MiB':>9} {'peak MiB':>9}")
    for name in names:
        compiled, _, x, _, compile_s, n_params, rates = prepared[name]
        temp, peak = memory(compiled)
        sps = statistics.median(rates)
        print(f"{name:<20} {'x'.join(map(str, x.shape)):<18} {n_params:>10,} {compile_s:>9.1f} {sps:>9.1f} "
              f"{sps * x.shape[0]:>9.0f} {temp:>9.2f} {peak:>9.2f}")

    # ---- ResNet basic block: dlcore vs hand-written ------------------------------------------
    shape = (32, 16, 16, 32)
    pair = {
        "hand-written": Head(HandBasicBlock(32)),
        "hand, dlcore's param order": Head(HandBasicBlockDlcoreOrder(32)),
        "dlcore": Head(BasicBlock(32)),
    }
    prep = {}
    for label, model in pair.items():
        compiled, carry, x, y, _ = setup(model, shape, "cls")
        prep[label] = [compiled, carry, x, y]
    ratios, ratios_order, rates = [], [], {k: [] for k in pair}
    for i in range(max(args.rounds, 3)):
        r = {}
        for label in (list(pair) if i % 2 == 0 else list(reversed(pair))):  # alternate the order
            p = prep[label]
            p[1], r[label] = time_steps(p[0], p[1], p[2], p[3], args.seconds)
            rates[label].append(r[label])
        ratios.append(r["hand-written"] / r["dlcore"])
        ratios_order.append(r["hand, dlcore's param order"] / r["dlcore"])
    print(f"\nResNet basic block, input {'x'.join(map(str, shape))}, identity shortcut (+ pool + linear head)")
    for label in pair:
        temp, peak = memory(prep[label][0])
        print(f"  {label:<27} {statistics.median(rates[label]):>8.1f} steps/s   temp {temp:.2f} MiB   peak {peak:.2f} MiB")
    print(f"  overhead (hand-written / dlcore steps/s), per round: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f}")
    print(f"  same, hand-written in dlcore's parameter order:       {', '.join(f'{r:.3f}' for r in ratios_order)}; "
          f"median {statistics.median(ratios_order):.3f}")


if __name__ == "__main__":
    main()
