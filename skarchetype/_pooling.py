"""How a layer's output becomes feature rows: its tensor, its layout, its pooling.

A layer's output is read as one channel axis and zero or more *position* axes (the
spatial axes of a map, the tokens of a sequence). Which axis holds the channels is the
*layout*: ``"channels_first"`` ``(n, channels, *positions)`` as torch convolutions give,
or ``"channels_last"`` ``(n, *positions, channels)`` as token sequences ``(n, tokens,
dim)`` and timm's Swin stages ``(n, h, w, c)`` give. Poolings reduce the position axes
(one row per sample) or keep them (``"positions"``: one row per sample and position).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

POOLINGS = ("auto", "avg", "mean", "max", "cls", "flatten", "positions")
LAYOUTS = ("auto", "channels_first", "channels_last")

# learned tokens that a model puts before the patch tokens of every sequence: the class
# token (HF ViT/DeiT/DINOv2/BEiT, timm, torchvision, CLIP's ``class_embedding``), and
# distillation and register tokens
_PREFIX_TOKEN_PARAMETERS = frozenset({
    "cls_token", "class_token", "class_embedding", "dist_token", "distillation_token",
    "register_tokens", "reg_token",
})
# torch layers whose outputs are channels-first whatever their shape
_CHANNELS_FIRST_MODULES = (
    nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)


class PoolingError(ValueError):
    """A layer's output does not suit the pooling asked for it."""


class PoolingTypeError(PoolingError, TypeError):
    """A pooling callable returned something other than a tensor."""


def attention_mask(batch) -> torch.Tensor | None:
    """The ``attention_mask`` of a dict batch (1 for tokens, 0 for padding), else None."""
    return batch.get("attention_mask") if isinstance(batch, Mapping) else None


def output_tensor(output) -> torch.Tensor:
    """The tensor that named poolings read from a layer's output.

    A tensor as it is; a tuple or list, its first element (transformer blocks return
    ``(hidden_states, ...)``); a dict or ``ModelOutput``, its first tensor field (such as
    ``last_hidden_state``).
    """
    while not isinstance(output, torch.Tensor):
        if isinstance(output, (tuple, list)) and output:
            output = output[0]
        elif isinstance(output, Mapping):
            tensors = [value for value in output.values() if isinstance(value, torch.Tensor)]
            if not tensors:
                break
            output = tensors[0]
        else:
            break
    if not isinstance(output, torch.Tensor):
        raise PoolingError(
            f"its output is a {type(output).__name__}, not a tensor, nor a tuple, list or "
            f"dict holding one; hook a submodule that returns a tensor, or pass a callable "
            f"pooling, which receives the output as it is"
        )
    return output


def channel_width(module: nn.Module) -> int | None:
    """The number of channels a torch convolution, norm, linear or embedding layer
    produces; None for other modules."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return module.num_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if isinstance(module, nn.LayerNorm) and module.normalized_shape:
        return module.normalized_shape[-1]
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Embedding):
        return module.embedding_dim
    return None


def _last_with_width(module: nn.Module) -> nn.Module | None:
    """The last registered submodule of ``module`` whose channel width is known."""
    found = None
    for sub in module.modules():
        if channel_width(sub) is not None:
            found = sub
    return found


def _layout_from_shape(shape: tuple[int, ...]) -> str | None:
    """The layout of a map whose spatial axes are square and whose channels are not."""
    first = len(set(shape[2:])) == 1 and shape[1] != shape[2]
    last = len(set(shape[1:-1])) == 1 and shape[-1] != shape[1]
    if first != last:
        return "channels_first" if first else "channels_last"
    return None


def resolve_layout(
    shape: tuple[int, ...], submodule: nn.Module, layer: str, last: nn.Module | None = None
) -> str:
    """The layout of an output of ``shape`` ``(n, ...)`` with 3 or more axes.

    ``last`` is the layer inside ``submodule`` with a known channel width (a convolution,
    norm, linear or embedding layer) that ran last; by default the last registered one.
    The evidence, in order:

    1. ``submodule`` is a torch convolution, batch or instance norm, or pooling layer,
       whose outputs are channels-first;
    2. the width of ``last`` is the size of exactly one of the two candidate axes;
    3. for maps, square spatial axes beside a channel axis of another size.

    Without any (a width that is the size of both axes says nothing: a ConvNeXt stage
    ends in a linear layer, then permutes back to channels-first), token sequences
    (3 axes) are read channels-last and maps channels-first, with a warning.
    """
    if isinstance(submodule, _CHANNELS_FIRST_MODULES):
        return "channels_first"
    last = last if last is not None else _last_with_width(submodule)
    width = None if last is None else channel_width(last)
    if width is not None and (width == shape[1]) != (width == shape[-1]):
        return "channels_first" if width == shape[1] else "channels_last"
    if len(shape) > 3 and (layout := _layout_from_shape(shape)) is not None:
        return layout
    guess = "channels_last" if len(shape) == 3 else "channels_first"
    warnings.warn(
        f"Layer {layer!r}: cannot tell which axis of its output {tuple(shape[1:])} holds the "
        f"channels; reading it {guess.replace('_', '-')}. Pass layout={{{layer!r}: "
        f"'channels_first' or 'channels_last'}} to say which.",
        UserWarning,
        stacklevel=2,
    )
    return guess


def _inside(layer: str, scope: str) -> bool:
    return not scope or layer == scope or layer.startswith(scope + ".")


def prefix_tokens(root: nn.Module, layer: str) -> int:
    """How many learned tokens (class, distillation, register) start ``layer``'s token
    sequences: those of the model's prefix-token parameters whose owner runs before the
    layer, i.e. the layer is in the owner's parent module but not inside the owner (patch
    embeddings run before the tokens are prepended) nor inside a patch-embedding module."""
    if any(part.startswith("patch_embed") for part in layer.split(".")):
        return 0
    count = 0
    for name, parameter in root.named_parameters():
        owner, _, attribute = name.rpartition(".")
        if attribute not in _PREFIX_TOKEN_PARAMETERS:
            continue
        runs_before = not owner or not _inside(layer, owner) or layer == owner
        if runs_before and _inside(layer, owner.rpartition(".")[0]):
            count += parameter.numel() // max(parameter.shape[-1], 1)
    return count


@dataclass
class Pooler:
    """A layer's resolved pooling: ``function(output, mask)`` gives ``(n * n_positions,
    n_features)`` rows, sample-major."""

    name: str | Callable
    layout: str | None
    n_positions: int
    grid: tuple[int, ...]
    function: Callable

    def __call__(self, output, mask: torch.Tensor | None) -> torch.Tensor:
        # named poolings read the output's tensor; a callable gets the output as it is
        if not isinstance(output, torch.Tensor) and isinstance(self.name, str):
            output = output_tensor(output)
        return self.function(output, mask)


def _check_mask(mask: torch.Tensor, n_tokens: int) -> torch.Tensor:
    if mask.ndim != 2 or mask.shape[1] != n_tokens:
        raise PoolingError(
            f"the batch's attention_mask has shape {tuple(mask.shape)}, which does not match "
            f"the output's {n_tokens} tokens; use pooling='cls' or a callable for this layer"
        )
    return mask


def _mean(positions: tuple[int, ...], tokens: bool) -> Callable:
    def mean(output, mask):
        if tokens and mask is not None:
            weights = _check_mask(mask, output.shape[1]).to(output.dtype).unsqueeze(-1)
            return (output * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)
        return output.mean(dim=positions)

    return mean


def _max(positions: tuple[int, ...], tokens: bool) -> Callable:
    def maximum(output, mask):
        if tokens and mask is not None:
            padding = _check_mask(mask, output.shape[1]).unsqueeze(-1) == 0
            output = output.masked_fill(padding, -torch.inf)
        return output.amax(dim=positions)

    return maximum


def _positions(layout: str, prefix: int) -> Callable:
    def positions(output, mask):
        if layout == "channels_first":
            output = output.flatten(2).transpose(1, 2)
        else:
            output = output.flatten(1, -2)[:, prefix:]
        return output.reshape(-1, output.shape[-1])

    return positions


def _callable_pooling(pooling: Callable) -> Callable:
    def pool(output, mask):
        try:
            pooled = pooling(output)
        except Exception as error:
            raise PoolingError(
                f"the pooling callable {pooling!r} failed on the layer's output "
                f"({_describe(output)}): {error}"
            ) from error
        if not isinstance(pooled, torch.Tensor) or pooled.ndim == 0:
            raise PoolingTypeError(
                f"the pooling callable {pooling!r} returned {_describe(pooled)}; it must "
                f"return a tensor of shape (n_samples, ...)"
            )
        return pooled.reshape(len(pooled), -1)

    return pool


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _grid(n_positions: int) -> tuple[int, ...]:
    side = math.isqrt(n_positions)
    return (side, side) if side * side == n_positions else (n_positions,)


def resolve_pooling(
    pooling,
    output,
    *,
    layer: str,
    root: nn.Module,
    layout: str = "auto",
    last: nn.Module | None = None,
    quiet: bool = False,
) -> Pooler:
    """The :class:`Pooler` of ``layer`` of ``root`` for its first output ``output``.

    ``last``: see :func:`resolve_layout`. Raises :class:`PoolingError` when ``pooling``
    does not suit the output; warns when a list output has several elements, unless
    ``quiet``.
    """
    if callable(pooling):
        return Pooler(pooling, None, 1, (), _callable_pooling(pooling))
    if isinstance(output, list) and len(output) > 1 and not quiet:
        warnings.warn(
            f"Layer {layer!r} returns a list of {len(output)} outputs (such as the maps of "
            f"several stages); pooling={pooling!r} reads only the first. Hook the submodule "
            f"that returns the one you want, or pass a callable pooling.",
            UserWarning,
            stacklevel=2,
        )
    shape = tuple(output_tensor(output).shape)
    if pooling == "flatten" or (pooling == "auto" and len(shape) < 3):
        return Pooler("flatten", None, 1, (), lambda out, mask: out.reshape(len(out), -1))
    if len(shape) < 3:
        raise PoolingError(
            f"pooling={pooling!r} reads the positions (spatial axes or tokens) of the output, "
            f"but its shape {shape} has none; use 'flatten' or 'auto'"
        )
    if layout == "auto":
        layout = resolve_layout(shape, root.get_submodule(layer), layer, last)
    tokens = len(shape) == 3 and layout == "channels_last"
    prefix = prefix_tokens(root, layer) if tokens else 0
    if pooling == "auto":
        pooling = ("cls" if prefix else "mean") if tokens else "avg"
    if pooling == "cls":
        if not tokens:
            raise PoolingError(
                f"pooling='cls' takes the first token of a sequence (n, tokens, dim), but the "
                f"output has shape {shape} ({layout.replace('_', '-')}); use 'avg' or 'flatten'"
            )
        return Pooler("cls", layout, 1, (), lambda out, mask: out[:, 0])
    axes = tuple(range(2, len(shape))) if layout == "channels_first" else tuple(
        range(1, len(shape) - 1)
    )
    if pooling in ("avg", "mean"):
        return Pooler(pooling, layout, 1, (), _mean(axes, tokens))
    if pooling == "max":
        return Pooler("max", layout, 1, (), _max(axes, tokens))
    grid = tuple(shape[axis] for axis in axes)
    if tokens:
        grid = _grid(shape[1] - prefix)
    return Pooler("positions", layout, math.prod(grid), grid, _positions(layout, prefix))
