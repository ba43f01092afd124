"""Reading the outputs of autoencoders: the tensor inside whatever an encoder or decoder returns.

Hand-written models return tensors or ``(mean, log_var)`` tuples, probabilistic ones
return a :class:`torch.distributions.Distribution`, and library models wrap their results:
diffusers' ``AutoencoderKL.encode`` returns an object whose ``latent_dist`` has a ``.mean``,
its ``decode`` an object with ``.sample``; Hugging Face models return ``ModelOutput``s
(ordered dicts whose fields are also attributes). :func:`read_output` finds the tensor in
a documented order, so that every estimator reads them alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# Names looked up, in this order, as keys of a mapping and then as attributes of an object.
ENCODER_FIELDS = ("latent_dist", "latents", "latent", "mean", "loc")
DECODER_FIELDS = ("sample", "reconstruction", "mean", "loc")
FIELDS = {"encoder": ENCODER_FIELDS, "decoder": DECODER_FIELDS}


def read_output(output, role: str) -> torch.Tensor:
    """The tensor an encoder (``role="encoder"``) or decoder (``role="decoder"``) returned.

    Looked up in this order, repeatedly until a tensor is found:

    1. a tensor is used as it is;
    2. a :class:`torch.distributions.Distribution` gives its ``mean`` (its ``loc`` when
       the mean has no closed form);
    3. a dict or ``ModelOutput`` gives the value of its first key among the role's fields
       (encoder: ``latent_dist, latents, latent, mean, loc``; decoder: ``sample,
       reconstruction, mean, loc``), else, for a ``ModelOutput``, its first field;
    4. a tuple or list gives its first element (the mean of ``(mean, log_var)``);
    5. any other object gives its first attribute among the role's fields (diffusers'
       ``DiagonalGaussianDistribution.mean``, ``DecoderOutput.sample``).

    Raises
    ------
    TypeError
        When none of these holds, naming the role and the type it returned.
    """
    fields = FIELDS[role]
    for _ in range(8):  # each step unwraps one level; real outputs nest two or three deep
        if isinstance(output, torch.Tensor):
            return output
        inner = _unwrap(output, fields)
        if inner is None:
            break
        output = inner
    raise TypeError(
        f"The {role} returned {_describe(output)}, which holds no tensor to read. Expected a "
        f"tensor, a torch.distributions.Distribution (its mean is used), a tuple or list whose "
        f"first element is the tensor, or a dict, ModelOutput or object with a field among "
        f"{list(fields)}. Wrap the {role} in a function that returns the tensor."
    )


def _unwrap(output, fields: tuple[str, ...]):
    """One level inside ``output`` towards its tensor, or None when there is none."""
    if isinstance(output, torch.distributions.Distribution):
        return _distribution_mean(output)
    if isinstance(output, Mapping):
        for field in fields:
            if output.get(field) is not None:
                return output[field]
        if hasattr(output, "to_tuple") and len(output):  # a ModelOutput: its first field
            return next(iter(output.values()))
        return None
    if isinstance(output, (tuple, list)):
        return output[0] if output else None
    for field in fields:
        value = getattr(output, field, None)
        if value is not None and not callable(value):
            return value
    return None


def _distribution_mean(distribution: torch.distributions.Distribution):
    try:
        return distribution.mean
    except NotImplementedError:  # e.g. a Cauchy: no mean, but a location
        return getattr(distribution, "loc", None)


def _describe(output) -> str:
    if isinstance(output, Mapping):
        return f"{type(output).__name__} with keys {list(output)}"
    return type(output).__name__
