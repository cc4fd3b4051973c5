"""The CNN zoo: published parameter counts (shapes only), output sizes vs the size formula,
learning on digits, a U-Net overfitting a segmentation batch, and clear errors for bad input.

Model initialisation in these tests uses ``rbg`` keys: on XLA:CPU, jitting an init that draws
dozens of parameters with the default (partitionable threefry) keys compiles ~4× slower, and the
tests check shapes and behaviour, not the particular random numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

from dlcore.data import from_arrays
from dlcore.errors import ConfigError, ShapeError
from dlcore.models import (
    DeepMLP,
    GRUBase1D,
    LinearClassifier,
    MLPBase1D,
    PermuteInputs,
    FCN,
    MODELS,
    VGG,
    AlexNet,
    ConvBase1D,
    ConvNeXt,
    ConvNeXtBlock,
    InceptionModule,
    LeNet5,
    ResNet,
    SeparableConv,
    SimpleCNN,
    UNet,
    XceptionBlock,
    count_params,
    get_model,
    pixel_cross_entropy,
    unet_output_size,
)
from dlcore.nn import chain_output_size, param_paths
from dlcore.optim import optimizer_fn
from dlcore.train import Recipe, fit


def rbg(seed: int = 0):
    return jax.random.key(seed, impl="rbg")


def init(model, x, seed: int = 0):
    return jax.jit(lambda k, x: model.init(k, x, train=False))(rbg(seed), x)


def run(model, v, x, train=False):
    if train:
        f = lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": rbg(1)})[0]  # noqa: E731
    else:
        f = lambda v, x: model.apply(v, x, train=False)  # noqa: E731
    return jax.jit(f)(v, x)


# ---- published parameter counts (jax.eval_shape: nothing allocated) ---------------------------

@pytest.mark.parametrize(
    "model, shape, published",
    [
        (LeNet5(), (1, 32, 32, 1), 61_706),  # C3 fully connected (the paper's sparse C3: ~60k)
        (AlexNet(), (1, 227, 227, 3), 60_965_224),  # Krizhevsky et al. 2012, two GPU groups
        (AlexNet(channels=(64, 192, 384, 256, 256), groups=(1,) * 5, first_padding=2), (1, 224, 224, 3), 61_100_840),
        (VGG(depth=16), (1, 224, 224, 3), 138_357_544),
        (ResNet(depth=18), (1, 224, 224, 3), 11_689_512),
        (ResNet(depth=50), (1, 224, 224, 3), 25_557_032),
        (ConvNeXt(), (1, 224, 224, 3), 28_589_128),  # ConvNeXt-T
        (ConvBase1D(), (1, 40), 5_210),  # MNIST-1D ConvBase
        (GRUBase1D(), (1, 40), 5_134),  # MNIST-1D GRUBase: bidirectional, hidden 6, head over all 40 steps
        (MLPBase1D(), (1, 40), 15_210),  # MNIST-1D MLPBase (residual hidden layer)
        (LinearClassifier(), (1, 40), 410),  # MNIST-1D LinearBase
    ],
    ids=["lenet5", "alexnet", "alexnet_torchvision", "vgg16", "resnet18", "resnet50", "convnext_t", "mnist1d",
         "mnist1d_gru", "mnist1d_mlp", "mnist1d_linear"],
)
def test_published_parameter_counts(model, shape, published):
    assert count_params(model, shape) == published


def test_inception_reductions_cut_parameters():
    # GoogLeNet inception (3a) on 28×28×192: each branch's weights + biases.
    with_red = 192 * 64 + 64 + 192 * 96 + 96 + 9 * 96 * 128 + 128 + 192 * 16 + 16 + 25 * 16 * 32 + 32 + 192 * 32 + 32
    naive = 192 * 64 + 64 + 9 * 192 * 128 + 128 + 25 * 192 * 32 + 32
    shape = (1, 28, 28, 192)
    assert count_params(InceptionModule(64, 96, 128, 16, 32, 32), shape) == with_red == 163_696
    assert count_params(InceptionModule(64, 0, 128, 0, 32, 0, reductions=False), shape) == naive
    out = jax.eval_shape(lambda x: InceptionModule(64, 96, 128, 16, 32, 32).init_with_output(rbg(), x, train=False)[0],
                         jax.ShapeDtypeStruct(shape, jnp.float32))
    assert out.shape == (1, 28, 28, 64 + 128 + 32 + 32)


def test_separable_conv_parameters_and_equivalence(key):
    c, f, k = 4, 6, 3
    m = SeparableConv(f, kernel_size=k, use_bias=False)
    x = jax.random.normal(key, (2, 7, 7, c))
    v = init(m, x)
    assert count_params(m, x.shape) == k * k * c + c * f  # vs k·k·c·f for a full conv
    # A separable conv is a full conv with the rank-1 kernel K[h, w, c, f] = dw[h, w, c] · pw[c, f].
    dw = v["params"]["depthwise"]["kernel"][:, :, 0, :]
    pw = v["params"]["pointwise"]["kernel"][0, 0]
    full = jnp.einsum("hwc,cf->hwcf", dw, pw)
    ref = jax.lax.conv_general_dilated(x, full, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(run(m, v, x), ref, rtol=1e-4, atol=1e-5)


# ---- forward passes of tiny versions; output sizes vs the formula -------------------------------

def test_tiny_classifiers_shapes_and_formula():
    alex = AlexNet(channels=(4, 8, 8, 8, 8), groups=(1, 2, 1, 2, 2), hidden=(16, 16), num_classes=5)
    x = jnp.ones((2, 67, 67, 3))
    v = init(alex, x)
    layers = [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]
    side = chain_output_size(67, layers)
    assert side == 1 and v["params"]["fc6"]["kernel"].shape[0] == side * side * 8
    assert v["params"]["conv2"]["conv"]["kernel"].shape == (5, 5, 2, 8)  # grouped: 4 in-channels / 2 groups
    assert run(alex, v, x, train=True).shape == (2, 5)

    lenet = LeNet5(channels=(2, 4, 8), hidden=8, first_padding=2)
    x = jnp.ones((2, 28, 28, 1))  # MNIST size with C1 padding 2 (= the 32×32 of the paper)
    v = init(lenet, x)
    assert v["params"]["f6"]["kernel"].shape == (8, 8)  # 28+4 → 28 → 14 → 10 → 5 → 1: 1·1·8 features
    assert run(lenet, v, x).shape == (2, 10)

    vgg = VGG(depth=11, widths=(2, 4, 4, 8, 8), hidden=(8, 8), num_classes=4, norm="batch")
    x = jnp.ones((2, 64, 64, 3))
    v = init(vgg, x)
    assert v["params"]["fc1"]["kernel"].shape[0] == (64 // 32) ** 2 * 8
    assert sum(1 for p in param_paths(v["params"]) if p.endswith("conv/kernel")) == 8  # VGG-11: 8 convs + 3 FC
    assert run(vgg, v, x, train=True).shape == (2, 4)

    cb = ConvBase1D()
    v = init(cb, jnp.ones((2, 40)))
    assert v["params"]["head"]["kernel"].shape == (chain_output_size(40, [(5, 2, 1), (3, 2, 1), (3, 2, 1)]) * 25, 10)


@pytest.mark.parametrize("depth, stem, side, sizes", [(18, "cifar", 8, None), (50, "imagenet", 32, (1, 1, 1, 1))])
def test_tiny_resnets(depth, stem, side, sizes):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, side, side, 3))
    res = ResNet(depth=depth, width=2, stem=stem, num_classes=3, stage_sizes=sizes)
    v = init(res, x)
    blocks = {p.split("/")[0] for p in param_paths(v["params"]) if p.startswith("stage")}
    assert len(blocks) == sum(sizes or (2, 2, 2, 2))
    expansion = 4 if depth == 50 else 1  # bottlenecks end with 4× the stage width
    assert v["params"]["head"]["kernel"].shape[0] == 2 * 8 * expansion
    assert "batch_stats" in v
    out, upd = jax.jit(lambda v, x: res.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
    assert out.shape == (2, 3)
    assert not np.allclose(upd["batch_stats"]["stem"]["norm"]["bn"]["mean"], 0.0)


def test_plain_resnet_has_no_skips():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    kw = dict(depth=18, width=4, stem="cifar", num_classes=3, stage_sizes=(1, 1, 1, 1))
    v_res, v_plain = init(ResNet(**kw), x), init(ResNet(residual=False, **kw), x)
    res_paths, plain_paths = set(param_paths(v_res["params"])), set(param_paths(v_plain["params"]))
    assert any("shortcut" in p for p in res_paths) and not any("shortcut" in p for p in plain_paths)
    assert plain_paths < res_paths  # the same layers, minus the projections
    # With the same weights (the projections unused), removing the skips changes the function.
    plain = ResNet(residual=False, **kw)
    assert not np.allclose(run(plain, v_res, x), run(ResNet(**kw), v_res, x), atol=1e-4)


def test_blocks_shapes_and_identity_at_init(key):
    x = jax.random.normal(key, (2, 8, 8, 16))
    blk = ConvNeXtBlock()
    v = init(blk, x)
    np.testing.assert_allclose(run(blk, v, x), x, atol=1e-3)  # layer scale 1e-6: starts as the identity
    assert "gamma" not in init(ConvNeXtBlock(layer_scale_init=0.0), x)["params"]
    xb = XceptionBlock(24, strides=2)
    v = init(xb, x)
    assert run(xb, v, x, train=True).shape == (2, 4, 4, 24) and "shortcut" in v["params"]
    same = XceptionBlock(16, reps=3, strides=1)
    assert "shortcut" not in init(same, x)["params"]  # identity shortcut in the middle flow


def test_fcn_and_unet_shapes():
    x = jnp.ones((2, 16, 16, 1))
    fcn = FCN(num_classes=3, widths=(4, 8))
    assert run(fcn, init(fcn, x), x).shape == (2, 16, 16, 3)
    valid = UNet(num_classes=2, features=2, depth=2, padding="VALID")
    x = jnp.ones((1, 44, 44, 1))
    assert run(valid, init(valid, x), x).shape == (1, unet_output_size(44, 2, "VALID"), unet_output_size(44, 2, "VALID"), 2)
    assert unet_output_size(572, 4, "VALID") == 388  # the paper's 572 → 388


def test_registry():
    for name in MODELS:
        assert get_model(name) is not None
    assert get_model("plain34").residual is False and get_model("resnet101").config()[1] == (3, 4, 23, 3)
    with pytest.raises(ConfigError, match=r"unknown model 'resnet19'; valid choices: .*resnet18"):
        get_model("resnet19")
    assert get_model("simple_cnn", channels=[4, 8]).channels == (4, 8)  # config lists become tuples
    # the command line builds zoo models by name (dlcore.cli falls back to dlcore.models.get_model)
    import ml_collections

    from dlcore.cli._build import build_model

    m = build_model(ml_collections.ConfigDict({"name": "mnist1d_cnn", "channels": 8}), 10)
    assert isinstance(m, ConvBase1D) and m.channels == 8 and m.num_classes == 10


# ---- bad input: clear errors at init time -------------------------------------------------------

@pytest.mark.parametrize(
    "model, shape, error, match",
    [
        (LeNet5(), (1, 28, 28, 1), ShapeError, r"input size 28 is too small for LeNet5.*at least 32"),
        (VGG(depth=16), (1, 16, 16, 3), ShapeError, r"too small for VGG \(5 2×2 max poolings\).*at least 32"),
        (ResNet(depth=18), (1, 16, 16, 3), ShapeError, r"ResNet needs spatial size ≥ 32.*got 16x16"),
        (AlexNet(), (1, 32, 32, 3), ShapeError, r"too small for AlexNet.*at least 67"),
        (UNet(depth=3), (1, 20, 20, 1), ShapeError, r"multiples of 8.*pad or crop to 24"),
        (UNet(depth=2, padding="VALID"), (1, 30, 30, 1), ShapeError, r"cannot take side 30.*like 32"),
        (FCN(widths=(4, 8)), (1, 10, 10, 1), ShapeError, r"multiples of 4"),
        (ConvNeXt(depths=(1, 1), dims=(4, 8)), (1, 4, 4, 3), ShapeError, r"≥ 8"),
        (SimpleCNN(channels=(4, 4, 4, 4)), (1, 8, 8, 1), ShapeError, r"too small for SimpleCNN"),
        (ConvBase1D(), (1, 2), ShapeError, r"too small for ConvBase1D"),
        (ResNet(depth=18, in_channels=3), (1, 64, 64, 1), ShapeError, r"in_channels=3 but the input has 1 channels"),
        (SimpleCNN(), (1, 8, 8), ShapeError, r"expects inputs \[B, H, W, C\].*x\[\.\.\., None\]"),
        (AlexNet(channels=(5, 8, 8, 8, 8)), (1, 227, 227, 3), ShapeError, r"AlexNet conv2: a grouped conv with 2 groups"),
        (ResNet(depth=19), (1, 32, 32, 3), ConfigError, r"unknown ResNet depth '19'; valid choices: 101, 152, 18, 34, 50"),
        (ResNet(depth=18, stem="tiny"), (1, 32, 32, 3), ConfigError, r"unknown ResNet stem 'tiny'"),
        (VGG(depth=12), (1, 32, 32, 3), ConfigError, r"unknown VGG depth '12'; valid choices: 11, 13, 16, 19"),
        (SimpleCNN(norm="bn"), (1, 8, 8, 1), ConfigError, r"unknown norm 'bn'; valid choices: batch, group"),
        (SimpleCNN(activation="relu6"), (1, 8, 8, 1), ConfigError, r"unknown activation 'relu6'"),
        (LeNet5(pooling="min"), (1, 32, 32, 1), ConfigError, r"unknown pooling 'min'; valid choices: avg, max"),
        (UNet(padding="FULL"), (1, 32, 32, 1), ConfigError, r"unknown U-Net padding 'FULL'"),
    ],
)
def test_bad_input_fails_at_init(model, shape, error, match):
    with pytest.raises(error, match=match):
        jax.eval_shape(lambda k, x: model.init(k, x, train=False), rbg(), jax.ShapeDtypeStruct(shape, jnp.float32))


def test_param_shape_mismatch_on_apply_is_clear(key):
    m = SimpleCNN(channels=(4,), in_channels=1)
    v = init(m, jnp.ones((1, 8, 8, 1)))
    with pytest.raises(ShapeError, match="in_channels=1 but the input has 3 channels"):
        m.apply(v, jnp.ones((1, 8, 8, 3)), train=False)


@pytest.mark.parametrize(
    "model, side",
    [(LeNet5(), 32), (AlexNet(), 67), (VGG(depth=11), 32), (SimpleCNN(channels=(4,)), 8), (ResNet(depth=18), 32),
     (FCN(widths=(4, 8)), 8), (UNet(depth=2), 16), (ConvNeXt(depths=(1, 1), dims=(4, 8)), 8)],
    ids=lambda m: type(m).__name__ if not isinstance(m, int) else str(m),
)
def test_channel_mismatch_caught_without_in_channels(model, side):
    """No in_channels given: the count seen at init is checked on apply (it was flax's cryptic
    ScopeParamShapeError, or for a first layer that broadcasts, no error at all)."""
    shape = lambda c: jax.ShapeDtypeStruct((1, side, side, c), jnp.float32)  # noqa: E731
    v = jax.eval_shape(lambda k, x: model.init(k, x, train=False), rbg(), shape(1))
    jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, shape(1))  # the same channels: fine
    with pytest.raises(ShapeError, match=r"initialized with 1-channel inputs but the input has 3 channels"):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, shape(3))


# ---- learning ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1] in [0, 1]
    y = d.target.astype(np.int32)
    return from_arrays(x[:1400], y[:1400], x[1400:], y[1400:], standardize=False, num_classes=10, name="digits")


def _adam_overfit(loss_fn, params, steps: int):
    """Full-batch Adam 1e-2 for ``steps`` steps in one compiled scan; ``(params, losses)``."""
    tx = optax.adam(1e-2)

    @jax.jit
    def train(params):
        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        (p, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
        return p, losses

    return train(params)


def test_small_cnn_overfits_one_batch(digits):
    m = SimpleCNN(channels=(8, 16), norm="none")
    xb, yb = digits.x_train[:32], digits.y_train[:32]
    params = init(m, xb)["params"]
    params, losses = _adam_overfit(
        lambda p: optax.softmax_cross_entropy_with_integer_labels(m.apply({"params": p}, xb, train=True), yb).mean(),
        params, 150)
    logits = m.apply({"params": params}, xb, train=False)
    assert float(losses[-1]) < 0.02 < float(losses[0])
    assert float(jnp.mean(jnp.argmax(logits, -1) == yb)) == 1.0


def test_small_cnn_learns_digits_with_fit(digits):
    recipe = Recipe(SimpleCNN(channels=(8, 16), norm="batch"), optimizer_fn("adam"))
    res = fit(recipe, digits, 0, hparams={"learning_rate": 3e-3}, num_steps=300, batch_size=64, progress=False)
    assert float(res.final["test/accuracy"]) > 0.85  # chance: 0.10
    bn = res.state.model_state["batch_stats"]["block0"]["norm"]["bn"]
    assert not np.allclose(bn["mean"], 0.0)  # running averages were updated by the train steps


def test_tiny_unet_overfits_a_segmentation_batch():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 16, 16), np.int32)
    for i in range(4):  # one random rectangle per image
        r, c = rng.integers(1, 8, size=2)
        h, w = rng.integers(4, 8, size=2)
        masks[i, r:r + h, c:c + w] = 1
    x = jnp.asarray(masks[..., None] + 0.6 * rng.normal(size=(4, 16, 16, 1)), jnp.float32)  # noisy: no threshold works
    y = jnp.asarray(masks)
    noisy_threshold_acc = float(jnp.mean((x[..., 0] > 0.5) == (y == 1)))
    m = UNet(num_classes=2, features=4, depth=2)
    params = init(m, x)["params"]
    params, losses = _adam_overfit(
        lambda p: jnp.mean(pixel_cross_entropy(m.apply({"params": p}, x, train=True), y)), params, 200)
    pred = jnp.argmax(m.apply({"params": params}, x, train=False), -1)
    acc = float(jnp.mean(pred == y))
    assert float(losses[-1]) < 0.1 * float(losses[0])
    assert acc > 0.98 > noisy_threshold_acc


def test_mnist1d_reference_models_compute_their_formulas(key):
    x = jax.random.normal(key, (3, 40))
    m = MLPBase1D(hidden_size=7)
    v = init(m, x)["params"]
    h = jax.nn.relu(x @ v["linear1"]["kernel"] + v["linear1"]["bias"][None])
    h = h + jax.nn.relu(h @ v["linear2"]["kernel"] + v["linear2"]["bias"][None])
    np.testing.assert_allclose(run(m, {"params": v}, x), h @ v["linear3"]["kernel"] + v["linear3"]["bias"][None],
                               rtol=1e-5, atol=1e-5)
    lin = LinearClassifier(4)
    w = init(lin, x)["params"]["head"]
    np.testing.assert_allclose(run(lin, {"params": {"head": w}}, x), x @ w["kernel"] + w["bias"][None],
                               rtol=1e-5, atol=1e-5)
    # The GRU's head reads every step: changing only the first input step changes the logits through
    # the forward direction, changing only the last step through the backward one and the last output.
    g = GRUBase1D()
    vg = init(g, x)
    base = run(g, vg, x)
    assert run(g, vg, x.at[:, 0].add(1.0)).shape == (3, 10)
    assert float(jnp.abs(run(g, vg, x.at[:, 0].add(1.0)) - base).max()) > 1e-4
    assert float(jnp.abs(run(g, vg, x.at[:, -1].add(1.0)) - base).max()) > 1e-4


def test_permute_inputs_equals_permuting_the_data(key):
    from dlcore.data import position_permutation

    x = jax.random.normal(key, (4, 40))
    m = PermuteInputs(ConvBase1D(channels=4), seed=5)
    v = init(m, x)
    inner = {"params": v["params"]["model"]}
    perm = position_permutation(5, 40)
    np.testing.assert_allclose(run(m, v, x), run(ConvBase1D(channels=4), inner, x[:, perm]), rtol=1e-6, atol=1e-6)
    assert not np.allclose(run(m, v, x), run(ConvBase1D(channels=4), inner, x), atol=1e-3)


def test_deep_mlp_plain_and_residual_formulas(key):
    x = jax.random.normal(key, (3, 40))
    for residual in (False, True):
        m = DeepMLP(width=5, depth=2, residual=residual)
        v = init(m, x)["params"]
        dense = lambda name, h: h @ v[name]["kernel"] + v[name]["bias"][None]  # noqa: E731
        h = jax.nn.relu(dense("stem", x))
        for i in (1, 2):
            z = jax.nn.relu(dense(f"layer{i}", h))
            h = h + z if residual else z
        np.testing.assert_allclose(run(m, {"params": v}, x), dense("head", h), rtol=1e-5, atol=1e-5)
    assert get_model("deep_mlp", depth=0).depth == 0
    big = init(DeepMLP(width=400, depth=1, kernel_init="normal:1"), x)["params"]
    small = init(DeepMLP(width=400, depth=1, kernel_init="normal:0.01"), x)["params"]
    kai = init(DeepMLP(width=400, depth=1, kernel_init="kaiming_normal"), x)["params"]
    assert abs(float(big["layer1"]["kernel"].std()) - 1.0) < 0.02
    assert abs(float(small["layer1"]["kernel"].std()) - 0.01) < 2e-4
    assert abs(float(kai["layer1"]["kernel"].std()) - np.sqrt(2 / 400)) < 2e-3
    with pytest.raises(ConfigError, match="'normal:STD'"):
        DeepMLP(kernel_init="normal:x").init(rbg(0), x)
    with pytest.raises(ConfigError, match="depth must be ≥ 0"):
        DeepMLP(depth=-1).init(rbg(0), x)
