"""The CNN zoo (lectures 9–10), parametric in width and depth.

Every model is a Linen module called as ``model.apply(variables, x, train=bool)`` (like
:class:`dlcore.nn.MLP`), so it plugs into :class:`dlcore.train.Recipe` and :func:`dlcore.train.fit`.
Images are NHWC (``[B, H, W, C]``), sequences NWC. Bad configurations and inputs (unknown names,
channel mismatches, images smaller than the downsampling) raise :mod:`dlcore.errors` at init time.
"""

from __future__ import annotations

from dlcore.errors import unknown_name
from dlcore.models._blocks import ConvNeXt, ConvNeXtBlock, InceptionModule, SeparableConv, XceptionBlock
from dlcore.models._classic import VGG, VGG_CONFIGS, AlexNet, LeNet5, SimpleCNN
from dlcore.models._common import ConvNormAct, count_params, global_avg_pool
from dlcore.models._mnist1d import (
    ConvBase1D,
    DeepMLP,
    GRUBase1D,
    LinearClassifier,
    MLPBase1D,
    PermuteInputs,
    SequenceTransformer1D,
)
from dlcore.models._resnet import RESNET_CONFIGS, BasicBlock, Bottleneck, ResNet, plain_resnet, resnet
from dlcore.models._segmentation import FCN, UNet, pixel_cross_entropy, unet_output_size

MODELS = {
    "lenet5": LeNet5,
    "alexnet": AlexNet,
    **{f"vgg{d}": (lambda d: lambda **kw: VGG(depth=d, **kw))(d) for d in VGG_CONFIGS},
    **{f"resnet{d}": (lambda d: lambda **kw: ResNet(depth=d, **kw))(d) for d in RESNET_CONFIGS},
    **{f"plain{d}": (lambda d: lambda **kw: ResNet(depth=d, residual=False, **kw))(d) for d in RESNET_CONFIGS},
    "convnext": ConvNeXt,
    "simple_cnn": SimpleCNN,
    "fcn": FCN,
    "unet": UNet,
    "mnist1d_cnn": ConvBase1D,
    "mnist1d_mlp": MLPBase1D,
    "mnist1d_gru": GRUBase1D,
    "deep_mlp": DeepMLP,
    "seq_transformer": SequenceTransformer1D,
    "linear": LinearClassifier,
    "logistic": LinearClassifier,
}
"""Model constructors by name (for configs): ``MODELS[name](**kwargs)``."""


def get_model(name: str, **kwargs):
    """Build a zoo model by name, e.g. ``get_model("resnet18", num_classes=10, width=16)``.

    >>> get_model("vgg16", num_classes=10).depth
    16
    >>> get_model("resnet19")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    dlcore.errors.ConfigError: unknown model 'resnet19'; valid choices: alexnet, convnext, ...
    """
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    # Config files give lists; module attributes should be (hashable) tuples.
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return MODELS[name](**kwargs)


__all__ = [
    "MODELS",
    "AlexNet",
    "BasicBlock",
    "Bottleneck",
    "ConvBase1D",
    "ConvNeXt",
    "ConvNeXtBlock",
    "ConvNormAct",
    "DeepMLP",
    "FCN",
    "GRUBase1D",
    "InceptionModule",
    "LeNet5",
    "LinearClassifier",
    "MLPBase1D",
    "PermuteInputs",
    "RESNET_CONFIGS",
    "ResNet",
    "SeparableConv",
    "SequenceTransformer1D",
    "SimpleCNN",
    "UNet",
    "VGG",
    "VGG_CONFIGS",
    "XceptionBlock",
    "count_params",
    "get_model",
    "global_avg_pool",
    "pixel_cross_entropy",
    "plain_resnet",
    "resnet",
    "unet_output_size",
]
