"""Convolution and pooling output sizes (lecture 9): ``⌊(N + 2P − F)/S⌋ + 1``.

With dilation ``D`` the filter covers ``F_eff = D·(F − 1) + 1`` inputs. The floor drops a
remainder; the lectures call strides that leave one *illegal* ("7×7 input, 3×3 filter, stride 3:
(7 − 3)/3 + 1 = 2.33"), so ``exact=True`` raises for them instead of rounding down.
"""

from __future__ import annotations

from typing import Sequence

from dlcore.errors import ConfigError, ShapeError

Padding = int | str | tuple[int, int]
"""Zero padding: an int ``P`` per side, ``(low, high)``, ``"SAME"`` or ``"VALID"``."""


def _pad_total(n: int, f_eff: int, stride: int, padding: Padding) -> int:
    if isinstance(padding, str):
        p = padding.upper()
        if p == "VALID":
            return 0
        if p == "SAME":
            # XLA/TensorFlow "SAME": output ceil(N/S), padding as needed (may be asymmetric).
            out = -(-n // stride)
            return max((out - 1) * stride + f_eff - n, 0)
        raise ConfigError(f"padding must be an int, (low, high), 'SAME' or 'VALID'; got {padding!r}")
    if isinstance(padding, (tuple, list)):
        if len(padding) != 2 or min(padding) < 0:
            raise ConfigError(f"padding pair must be (low, high) ≥ 0, got {padding!r}")
        return int(padding[0]) + int(padding[1])
    if int(padding) < 0:
        raise ConfigError(f"padding must be ≥ 0, got {padding}")
    return 2 * int(padding)


def conv_output_size(
    n: int, kernel: int, stride: int = 1, padding: Padding = 0, dilation: int = 1, *, exact: bool = False
) -> int:
    """Output length of a convolution (or pooling) along one axis: ``⌊(N + 2P − F_eff)/S⌋ + 1``.

    Args:
      n: input length ``N``.
      kernel: filter size ``F``.
      stride: ``S``.
      padding: ``P`` per side, ``(low, high)``, ``"SAME"`` or ``"VALID"``.
      dilation: ``D`` (``F_eff = D(F − 1) + 1``).
      exact: raise :class:`ConfigError` if ``(N + 2P − F_eff)`` is not a multiple of ``S``.
    Returns:
      the output length (≥ 1).
    Raises:
      ShapeError: the (padded) input is smaller than the filter.

    >>> conv_output_size(7, 3, 2), conv_output_size(7, 3, 1, padding=1), conv_output_size(7, 3, 3)
    (3, 7, 2)
    >>> conv_output_size(7, 3, 3, exact=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    dlcore.errors.ConfigError: illegal stride 3 for input 7, filter 3, total padding 0: (7 + 0 - 3)/3 + 1 = 2.33 ...
    """
    if min(n, kernel, stride, dilation) < 1:
        raise ConfigError(f"sizes must be ≥ 1: n={n}, kernel={kernel}, stride={stride}, dilation={dilation}")
    f_eff = dilation * (kernel - 1) + 1
    total_pad = _pad_total(n, f_eff, stride, padding)
    span = n + total_pad - f_eff
    if span < 0:
        raise ShapeError(
            f"input of length {n} (padding {total_pad}) is smaller than the filter's extent {f_eff}; "
            "use a larger input, more padding or a smaller filter"
        )
    if exact and span % stride:
        divisors = [d for d in range(1, span + 1) if span % d == 0] or [1]
        raise ConfigError(
            f"illegal stride {stride} for input {n}, filter {f_eff}, total padding {total_pad}: "
            f"({n} + {total_pad} - {f_eff})/{stride} + 1 = {span / stride + 1:.2f} is not an integer; "
            f"use a stride that divides {span} (one of {divisors[:6]}) or change the padding"
        )
    return span // stride + 1


def pool_output_size(n: int, window: int, stride: int | None = None, padding: Padding = 0, *, exact: bool = False) -> int:
    """Output length of max/average pooling: the conv formula with ``F`` = window (stride defaults to it).

    >>> pool_output_size(4, 2), pool_output_size(13, 3, 2)
    (2, 6)
    """
    return conv_output_size(n, window, stride or window, padding, exact=exact)


def transposed_conv_output_size(n: int, kernel: int, stride: int = 1, padding: Padding = "VALID") -> int:
    """Output length of a transposed ("up-") convolution as flax computes it.

    ``"VALID"``: ``N·S + max(F − S, 0)`` (``(N − 1)·S + F`` when ``F ≥ S``);
    ``"SAME"``: ``N·S``; an int ``P`` (PyTorch's convention): ``(N − 1)·S − 2P + F``.

    >>> transposed_conv_output_size(8, 2, 2), transposed_conv_output_size(8, 3, 2, "SAME")
    (16, 16)
    """
    if isinstance(padding, str):
        p = padding.upper()
        if p == "SAME":
            return n * stride
        if p == "VALID":
            return n * stride + max(kernel - stride, 0)
        raise ConfigError(f"padding must be an int, 'SAME' or 'VALID'; got {padding!r}")
    out = (n - 1) * stride - 2 * int(padding) + kernel
    if out < 1:
        raise ShapeError(f"transposed conv output would be {out} < 1 for n={n}, kernel={kernel}, stride={stride}")
    return out


def same_padding(kernel: int, dilation: int = 1) -> int:
    """Padding ``P = (F_eff − 1)/2`` that keeps the size at stride 1 ("same" convolution).

    >>> same_padding(3), same_padding(5), same_padding(3, dilation=2)
    (1, 2, 2)
    """
    f_eff = dilation * (kernel - 1) + 1
    if f_eff % 2 == 0:
        raise ConfigError(f"an even filter extent {f_eff} has no symmetric 'same' padding; use an odd kernel or 'SAME'")
    return (f_eff - 1) // 2


def chain_output_size(n: int, layers: Sequence[tuple], *, what: str = "the network") -> int:
    """Push a length through a list of ``(kernel, stride, padding[, dilation])`` layers.

    Raises a :class:`ShapeError` naming the layer where the input became too small — used by the
    models to fail at init time (not deep in XLA) for images smaller than their downsampling.

    >>> chain_output_size(32, [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0)])
    5
    """
    size = n
    for i, spec in enumerate(layers):
        try:
            size = conv_output_size(size, *spec)
        except ShapeError:
            raise ShapeError(
                f"input size {n} is too small for {what}: layer {i} (kernel, stride, padding = {spec[:3]}) "
                f"gets size {size}; use inputs of at least {min_input_size(layers)}"
            ) from None
    return size


def min_input_size(layers: Sequence[tuple]) -> int:
    """The smallest input length for which every layer in ``layers`` has an output ≥ 1.

    >>> min_input_size([(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0), (5, 1, 0)])
    32
    """
    need = 1  # output length wanted after the last layer
    for spec in reversed(layers):
        kernel, stride, padding = spec[:3]
        dilation = spec[3] if len(spec) > 3 else 1
        f_eff = dilation * (kernel - 1) + 1
        if isinstance(padding, str):
            pad = 0 if padding.upper() == "VALID" else None
        elif isinstance(padding, (tuple, list)):
            pad = sum(padding)
        else:
            pad = 2 * padding
        if pad is None:  # SAME: output ceil(N/S) ≥ need
            need = (need - 1) * stride + 1
        else:
            need = max((need - 1) * stride + f_eff - pad, 1)
    return need
