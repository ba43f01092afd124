"""LatentResponse: interventional assays of an autoencoder's latent space.

The latent response function of an autoencoder is ``r(z) = e(g(z))``: decode, then
re-encode with the posterior mean (Leeb et al., "Exploring the Latent Space of
Autoencoders with Interventional Assays", NeurIPS 2022). Intervening on one latent
coordinate and watching how ``r`` moves shows which dimensions the model uses, which
ones drive which, and where its learned manifold lies.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import Bunch, check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.utils.data import DataLoader, RandomSampler

from ._autoencoder_outputs import read_output
from ._batches import Lookahead, batch_reader, describe_batch, input_kind, map_batches
from ._interventions import cycled_permutations, intervention_groups, response_differences
from ._response_maps import SliceGrid, map_summaries
from ._torch import (
    check_finite,
    evaluation_mode,
    is_tensor,
    resolve_device,
    to_numpy,
    torch_dtype,
)


def _owning_module(function) -> torch.nn.Module | None:
    """The torch module a callable is, or is a bound method (or a partial of one) of."""
    if isinstance(function, torch.nn.Module):
        return function
    if isinstance(function, partial):
        return _owning_module(function.func)
    owner = getattr(function, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def _parameter_placement(modules):
    """The (device, dtype) of the first parameter of ``modules``, or Nones."""
    for module in modules:
        for parameter in module.parameters():
            return parameter.device, parameter.dtype
    return None, None


def _require_finite(values: torch.Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` when ``values`` holds NaN or infinity (one reduction)."""
    if not (math.isfinite(values.sum().item()) or bool(torch.isfinite(values).all())):
        raise ValueError(message)


def _refuse_complex(X, name: str) -> None:
    """Refuse complex data, whose imaginary part a cast to float would silently drop."""
    dtype = np.asarray(X).dtype if isinstance(X, (list, tuple)) else getattr(X, "dtype", None)
    if X.is_complex() if is_tensor(X) else getattr(dtype, "kind", None) == "c":
        raise ValueError(
            f"Complex data not supported: {name} is complex ({dtype}), and LatentResponse "
            "works on real values. Pass its real part, its modulus, or the real and imaginary "
            "parts as separate channels."
        )


def _real_tensor(X: torch.Tensor, name: str) -> torch.Tensor:
    """A tensor as its detached value, refused when complex, cast to float64 when integral."""
    _refuse_complex(X, name)
    X = X.detach()
    return X if X.is_floating_point() else X.double()


class LatentResponse(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Latent response assays of a trained autoencoder.

    The latent response ``r(z) = e(g(z))`` decodes a latent code and encodes the result back
    to its posterior mean. ``fit`` encodes the data (the aggregate posterior), then intervenes
    on every latent coordinate ``j`` in turn and measures how each coordinate ``i`` of the
    response moves:

    ``response_matrix_[j, i] = sqrt(mean_n (r_i(z~^(n)) - r_i(z^(n)))^2)``

    with ``z~`` = ``z`` with coordinate ``j`` replaced. A large diagonal entry means the model
    uses dimension ``j`` (it survives decoding and re-encoding); a zero row means the decoder
    ignores it; off-diagonal entries show dimensions that drive others.

    Latents may have any shape ``(n, *latent_shape)`` (e.g. ``(n, 4, 32, 32)`` for the VAE
    of a latent diffusion model): the assays work on the flattened coordinates, in C order,
    and ``dims`` limits the interventions to chosen coordinates or groups of them.

    ``X`` may be an array, a tensor or a memory map, or be streamed batch by batch through
    the input layer of :class:`TorchLayerFeatures`, in memory of the order of a batch plus
    the latent codes: a map-style ``Dataset`` (read item by item, collated per
    ``batch_size`` items), a ``DataLoader`` or any iterable of batches (used as it
    batches; an iterator is read once, so pass it to ``fit_transform`` or a re-iterable
    loader to ``fit`` then ``transform``). Batches are tensors or arrays of images, or
    tuples such as ``(image, label)`` whose first element is the images. Without modules
    to take them from, the device and dtype the models are fed with come from the first
    batch; batches are checked as they stream (NaN, infinity, complex values).

    Parameters
    ----------
    encoder : callable
        Maps a batch of inputs to latent codes of shape ``(n, *latent_shape)``: a torch
        module, a bound method of one (``vae.encode``) or any callable on tensors. Its
        output is read in this order: a tensor; a ``torch.distributions.Distribution``
        (its mean); a dict or ``ModelOutput`` (its field ``latent_dist``, ``latents``,
        ``latent``, ``mean`` or ``loc``, the first present, else a ``ModelOutput``'s first
        field); a tuple or list (its first element, e.g. the mean of ``(mean, log_var)``);
        any other object (its attribute ``latent_dist``, ``latents``, ``latent``, ``mean``
        or ``loc``). The lookup repeats until a tensor is found, so diffusers'
        ``AutoencoderKL.encode`` gives ``output.latent_dist.mean``.
    decoder : callable
        Maps latent codes ``(n, *latent_shape)`` to a batch shaped like the input. Read as
        the encoder's output, with the fields ``sample``, ``reconstruction``, ``mean`` and
        ``loc`` (diffusers' ``decode(z).sample``).
    n_samples : int, default=1024
        Number of base points of the response matrix: encoded samples (all of them when
        the data has fewer) or, with ``base="prior"``, draws from the prior.
    base : {"data", "prior"}, default="data"
        Where base points come from: the encoded data (the aggregate posterior), or the
        standard normal prior (the authors' notebook mode).
    intervention : {"aggregate", "prior"} or array-like, default="aggregate"
        Where replacement values come from. ``"aggregate"``: the marginal of the encoded
        data (the values of another encoded sample, drawn independently of the base
        point); ``"prior"``: a standard normal. An array fixes the values: of shape
        ``(n_values, n_latent)`` (or ``(n_values, *latent_shape)``), column ``i`` holds the
        values coordinate ``i`` takes; of shape ``(n_values,)``, every coordinate takes
        these values. Each value is used equally often (give or take one), in random order.
    dims : None, "channels" or sequence, default=None
        The interventions, one row of ``response_matrix_`` each. ``None``: every flat
        coordinate, one at a time (``n_latent`` decode+encode passes per base point).
        ``"channels"``: each index of the first latent axis as a group (one channel of a
        ``(c, h, w)`` latent is replaced as a whole, by another sample's channel with
        ``"aggregate"``). A sequence: each element a flat coordinate, or a sequence of flat
        coordinates intervened together (``numpy.ravel_multi_index`` turns ``(c, y, x)``
        into a flat coordinate).
    normalize : {None, "std"}, default=None
        ``"std"`` divides column ``i`` by ``sqrt(2) * std(z_i)`` over the encoded data, so a
        perfect identity reads 1 with aggregate interventions; the columns of collapsed
        coordinates (see ``collapse_threshold``) are set to 0, with a warning. ``None``
        keeps the raw RMS (``sqrt(2)`` for an identity on unit-variance codes).
    collapse_threshold : float in [0, 1), default=0.05
        A coordinate whose standard deviation over the encoded data is at most this
        fraction of the largest one is collapsed (``collapsed_``): dividing by its tiny
        spread would blow its noise up to the size of the responses of used coordinates.
    modules : torch.nn.Module or list of them, default=None
        Further modules the encoder and decoder run, put in eval mode during every assay
        and restored afterwards. The modules behind ``encoder`` and ``decoder`` (a module, a
        bound method of one, or a ``functools.partial`` of those) are found without help;
        name them here when the encoder and decoder are plain functions.
    batch_size : int, default=256
        Most rows sent through the encoder or decoder at once.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where inputs are sent; the modules must live there. ``"auto"`` uses the device of
        the modules' parameters, else the device of a tensor input, else CUDA when
        available.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of base points and intervention values.
    verbose : int, default=0
        Print progress of the encoding and of the response passes.

    Attributes
    ----------
    latents_ : ndarray of shape (n_samples_fit, n_latent)
        Posterior means of the training data, flattened: the latent pool.
    latent_std_ : ndarray of shape (n_latent,)
        Standard deviation of each latent coordinate over the pool.
    collapsed_ : ndarray of bool of shape (n_latent,)
        Coordinates whose standard deviation is at most ``collapse_threshold`` times the
        largest.
    response_matrix_ : ndarray of shape (n_interventions, n_latent)
        Row ``j`` intervention ``j`` (``intervened_[j]``), column ``i`` responding
        coordinate; square, ``(n_latent, n_latent)``, with ``dims=None``.
    intervened_ : list of ndarray of int
        The flat coordinates each row of ``response_matrix_`` intervened on.
    n_latent_ : int
        Number of flat latent coordinates ``d``.
    latent_shape_ : tuple of int
        Shape of one latent code, as the encoder returns it.
    sample_shape_ : tuple of int
        Shape of one input sample; ``inverse_transform`` returns this shape.
    n_features_in_ : int
        Size of the second axis of ``X`` (channels for images). Not set by a fit on a
        streamed input, whose batches are checked against ``latent_shape_`` instead.

    Examples
    --------
    >>> import torch
    >>> from skarchetype import LatentResponse
    >>> _ = torch.manual_seed(0)
    >>> weights = torch.linalg.qr(torch.randn(5, 3, dtype=torch.float64))[0]
    >>> encode, decode = (lambda x: x @ weights), (lambda z: z @ weights.T)
    >>> X = torch.randn(5000, 3, dtype=torch.float64) @ weights.T
    >>> lr = LatentResponse(encode, decode, n_samples=5000, normalize="std", random_state=0)
    >>> lr.fit(X).response_matrix_.round(1)  # an orthonormal autoencoder uses every dimension
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """

    _parameter_constraints: dict = {
        "encoder": [callable],
        "decoder": [callable],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "base": [StrOptions({"data", "prior"})],
        "intervention": [StrOptions({"aggregate", "prior"}), "array-like"],
        "dims": [None, StrOptions({"channels"}), "array-like"],
        "normalize": [None, StrOptions({"std"})],
        "collapse_threshold": [Interval(Real, 0, 1, closed="left")],
        "modules": [None, torch.nn.Module, list, tuple],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        encoder,
        decoder,
        *,
        n_samples=1024,
        base="data",
        intervention="aggregate",
        dims=None,
        normalize=None,
        collapse_threshold=0.05,
        modules=None,
        batch_size=256,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.decoder = decoder
        self.n_samples = n_samples
        self.base = base
        self.intervention = intervention
        self.dims = dims
        self.normalize = normalize
        self.collapse_threshold = collapse_threshold
        self.modules = modules
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ models and their state
    def _protected_modules(self) -> list[torch.nn.Module]:
        """The modules kept in eval mode during an assay: behind the callables, and ``modules``."""
        extra = self.modules
        extra = [] if extra is None else [extra] if isinstance(extra, torch.nn.Module) else extra
        for position, module in enumerate(extra):
            if not isinstance(module, torch.nn.Module):
                raise TypeError(
                    f"modules must be a torch.nn.Module or a list of them; element {position} "
                    f"is a {type(module).__name__}."
                )
        found = [_owning_module(self.encoder), _owning_module(self.decoder), *extra]
        return list({id(module): module for module in found if module is not None}.values())

    def _assay_mode(self):
        """Eval mode for the protected modules, their own modes restored on exit, also on error.

        Dropout would make the assay random and batch normalisation in train mode would
        normalise each batch by itself and overwrite its running statistics.
        """
        return evaluation_mode(*self._protected_modules())

    def _place(self, sample) -> None:
        """Resolve the device and dtype the models are fed with, from the modules or else
        from ``sample``: the input array, or the first batch of a streamed input."""
        device, dtype = _parameter_placement(self._protected_modules())
        if self.device != "auto" or device is None:
            device = resolve_device(self.device, sample)
        self._device = device
        self._dtype = dtype if dtype is not None else torch_dtype(sample.dtype)

    def _encode(self, batch: torch.Tensor, source: str = "inputs") -> torch.Tensor:
        """Posterior means of a batch, shaped as the encoder gives them: (n, *latent_shape)."""
        latents = read_output(self.encoder(batch), "encoder")
        _check_model_output(latents, batch, "encoder", source)
        return latents

    def _decode(self, Z: torch.Tensor) -> torch.Tensor:
        """Decoded samples of flat latents ``Z`` (n, n_latent)."""
        decoded = read_output(self.decoder(Z.reshape(len(Z), *self.latent_shape_)), "decoder")
        _check_model_output(decoded, Z, "decoder", "latent codes")
        return decoded

    def _respond(self, Z: torch.Tensor) -> torch.Tensor:
        """The latent response ``e(g(z))`` of flat latents, flat."""
        return self._encode(self._decode(Z), "decoded samples").reshape(len(Z), -1)

    # ------------------------------------------------------------------ reading inputs
    def _validate_input(self, X, *, reset: bool) -> tuple[object, bool]:
        """Check ``X`` and record or compare its features; also say whether ``X`` is streamed.

        Arrays and tensors (2-D or more) are checked whole. Datasets, DataLoaders and
        iterables of batches are left unread, their batches checked as they stream; as in
        :class:`TorchLayerFeatures`, a fit on them records no ``n_features_in_`` (the
        latent shape of the fit is what later batches are checked against).
        """
        if input_kind(X) != "array":
            if reset:
                for attribute in ("n_features_in_", "feature_names_in_"):
                    self.__dict__.pop(attribute, None)
            return X, True
        if is_tensor(X):
            X = _real_tensor(X, "X")
            if X.ndim < 2 or len(X) == 0:
                raise ValueError(
                    f"X must be a tensor of shape (n_samples, ...) with at least one sample and "
                    f"two dimensions; got shape {tuple(X.shape)}."
                )
            check_finite(X)
            return validate_data(self, X, skip_check_array=True, reset=reset), False
        _refuse_complex(X, "X")
        X = validate_data(self, X, allow_nd=True, dtype=(np.float64, np.float32), reset=reset)
        return X, False

    def _map_input(self, function, X, description: str, *, streamed: bool):
        """Apply ``function`` to batches of the input ``X``: the one place where X is read.

        The batches of a streamed input are checked first, as an array is checked whole.
        """
        checked = (lambda batch: function(_checked_batch(batch))) if streamed else function
        return map_batches(
            checked, X, batch_size=self.batch_size, device=self._device, dtype=self._dtype,
            verbose=self.verbose, description=description,
        )

    def _encode_all(self, X, latent_shape=None, *, streamed: bool = False
                    ) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Flat posterior means of every sample of ``X`` on the model device, and their shape.

        ``latent_shape``: the shape every latent code must have (that of the fit), or None
        to take it from the first batch.
        """
        parts = []
        for _, latents in self._map_input(self._encode, X, "encoding", streamed=streamed):
            latent_shape = _check_latent_shape(latents, latent_shape)
            parts.append(latents.reshape(len(latents), -1))
        return torch.cat(parts), latent_shape

    def _check_latents(self, Z, name: str):
        """Latent codes given by the user, (n, n_latent) or (n, *latent_shape), flattened."""
        if is_tensor(Z):
            Z = _real_tensor(Z, name)
            _require_finite(Z, f"{name} contains NaN or infinity; pass finite latent codes.")
        else:
            _refuse_complex(Z, name)
            Z = check_array(Z, dtype=(np.float64, np.float32), allow_nd=True, input_name=name)
        if len(Z) == 0 or tuple(Z.shape[1:]) not in ((self.n_latent_,), self.latent_shape_):
            raise ValueError(
                f"{name} must hold latent codes of shape (n_samples, {self.n_latent_}) or "
                f"(n_samples, *{self.latent_shape_}) with n_samples >= 1; got shape "
                f"{tuple(Z.shape)}."
            )
        return Z.reshape(len(Z), self.n_latent_)

    def _map_latents(self, function, Z, description: str, name: str = "Z") -> np.ndarray:
        """Apply ``function`` to batches of flat latents ``Z`` (an array, or an iterable of
        batches of them, called ``name`` in errors) and gather the numpy result."""
        parts = [to_numpy(out) for _, out in map_batches(
            function, Z, batch_size=self.batch_size, device=self._device, dtype=self._dtype,
            verbose=self.verbose, description=description, name=name,
        )]
        return np.concatenate(parts)

    def _check_chain(self, latents: torch.Tensor) -> None:
        """Fail early, with a clear message, when decode(encode(x)) cannot be compared with x."""
        try:
            with torch.inference_mode():
                decoded = self._decode(latents[:2])
                recoded = self._encode(decoded, "decoded samples")
        except RuntimeError as error:
            raise ValueError(
                f"Decoding latents of shape {(len(latents[:2]), *self.latent_shape_)} and "
                f"encoding the result failed: the encoder and decoder do not chain ({error})."
            ) from error
        expected = int(np.prod(self.sample_shape_))
        if decoded[0].numel() != expected or tuple(recoded.shape[1:]) != self.latent_shape_:
            raise ValueError(
                f"The encoder and decoder do not chain: inputs have sample shape "
                f"{self.sample_shape_}, the decoder returned {tuple(decoded.shape[1:])} and "
                f"re-encoding gave {tuple(recoded.shape[1:])} for latents of shape "
                f"{self.latent_shape_}."
            )

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Encode ``X`` and compute the response matrix.

        Parameters
        ----------
        X : array-like, tensor, Dataset, DataLoader or iterable of batches
            Inputs the encoder accepts, of shape (n_samples, ...) (e.g. images
            ``(n, c, h, w)``); see the class docstring for streamed inputs.
        y : Ignored

        Returns
        -------
        self : LatentResponse
        """
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit and return the flat posterior means of ``X`` (the latent pool), (n_samples, d).

        ``X`` is read once, so a one-shot iterator of batches can be fitted and transformed.
        """
        return to_numpy(self._fit(X)).copy()

    def _fit(self, X) -> torch.Tensor:
        X, streamed = self._validate_input(X, reset=True)
        # the first batch is read ahead, so that a one-shot iterator is still read once
        batches = Lookahead(batch_reader(X, self.batch_size))
        first = _first_images(batches)
        self._place(first)
        self.sample_shape_ = tuple(first.shape[1:])
        rng = check_random_state(self.random_state)
        with self._assay_mode():
            latents, self.latent_shape_ = self._encode_all(batches, streamed=streamed)
            self.n_latent_ = latents.shape[1]
            groups = intervention_groups(self.dims, self.latent_shape_)
            fixed = None if isinstance(self.intervention, str) else self._fixed_values(latents)
            self._check_chain(latents)
            self.latents_ = to_numpy(latents)
            self.latent_std_ = self.latents_.std(axis=0)
            self.collapsed_ = self.latent_std_ <= self.collapse_threshold * self.latent_std_.max()
            raw = self._response_matrix(latents, groups, fixed, rng)
        self.intervened_ = groups.members
        scales = self._column_scales()
        self.response_matrix_ = raw if scales is None else raw * scales
        return latents

    def _fixed_values(self, latents: torch.Tensor) -> torch.Tensor:
        """The ``intervention`` array as a pool of values, (n_values, n_latent)."""
        values = self.intervention
        values = to_numpy(_real_tensor(values, "intervention")) if is_tensor(values) else values
        _refuse_complex(values, "intervention")
        values = check_array(values, dtype=np.float64, ensure_2d=False, allow_nd=True,
                             input_name="intervention")
        if values.ndim > 1 and values.shape[1:] not in ((self.n_latent_,), self.latent_shape_):
            raise ValueError(
                f"intervention must have shape (n_values,), (n_values, {self.n_latent_}) or "
                f"(n_values, *{self.latent_shape_}); got shape {values.shape}."
            )
        pool = torch.as_tensor(values, dtype=latents.dtype, device=latents.device)
        if pool.ndim == 1:  # the same values for every coordinate
            return pool[:, None].expand(-1, self.n_latent_)
        return pool.reshape(len(pool), self.n_latent_)

    def _base_points(self, latents: torch.Tensor, rng) -> torch.Tensor:
        """(n_base, d) base latents: encoded samples, or draws from the prior."""
        if self.base == "prior":
            draws = rng.standard_normal((self.n_samples, self.n_latent_))
            return torch.as_tensor(draws, dtype=latents.dtype, device=latents.device)
        chosen = rng.permutation(len(latents))[:self.n_samples]
        return latents[torch.as_tensor(chosen, device=latents.device)]

    def _donors(self, latents, fixed, n_base: int, n_interventions: int, rng):
        """(pool, donors): intervention ``j`` of base point ``n`` takes ``pool[donors[j, n]]``.

        Donors are drawn independently of the base points, a separate order per
        intervention, which draws each coordinate (or group) from its marginal.
        """
        if fixed is None and self.intervention == "prior":
            pool = rng.standard_normal((n_base, self.n_latent_))
            pool = torch.as_tensor(pool, dtype=latents.dtype, device=latents.device)
            donors = torch.arange(n_base, device=latents.device).expand(n_interventions, -1)
            return pool, donors
        pool = latents if fixed is None else fixed
        donors = cycled_permutations(rng, len(pool), n_base, n_interventions)
        return pool, torch.as_tensor(donors, device=latents.device)

    def _response_matrix(self, latents, groups, fixed, rng) -> np.ndarray:
        base = self._base_points(latents, rng)
        pool, donors = self._donors(latents, fixed, len(base), len(groups), rng)
        squares = latents.new_zeros(len(groups), self.n_latent_)
        with torch.inference_mode():
            for interventions, rows, differences, _ in response_differences(
                self._respond, base, pool, donors, groups, batch_size=self.batch_size
            ):
                squares[interventions] += differences.square().sum(dim=1)
                if self.verbose and interventions.stop == len(groups):
                    print(f"[skarchetype] interventions: {rows.stop}/{len(base)} base points")
        return to_numpy((squares / len(base)).sqrt())

    def _column_scales(self) -> np.ndarray | None:
        """What ``normalize="std"`` multiplies column ``i`` by: ``1 / (sqrt(2) std(z_i))``.

        Collapsed coordinates get 0, and a warning names them. None without normalisation.
        """
        if self.normalize is None:
            return None
        collapsed = np.flatnonzero(self.collapsed_)
        if len(collapsed):
            listed = ", ".join(map(str, collapsed[:10])) + (", ..." if len(collapsed) > 10 else "")
            warnings.warn(
                f"{len(collapsed)} of {self.n_latent_} latent coordinates are collapsed (their "
                f"standard deviation is at most collapse_threshold={self.collapse_threshold} "
                f"times the largest, {self.latent_std_.max():.3g}): {listed}. Their columns "
                "of the normalised matrices are set to 0 (see collapsed_); lower "
                "collapse_threshold to normalise them anyway.",
                UserWarning, stacklevel=4,
            )
        scale = np.sqrt(2) * self.latent_std_
        return np.where(self.collapsed_, 0.0, 1.0 / np.where(self.collapsed_, 1.0, scale))

    # ------------------------------------------------------------------ transformer API
    def transform(self, X) -> np.ndarray:
        """Flat posterior means of ``X``.

        Parameters
        ----------
        X : array-like, tensor, Dataset, DataLoader or iterable of batches
            Inputs the encoder accepts, of shape (n_samples, ...) (e.g. images
            ``(n, c, h, w)``); see the class docstring for streamed inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_latent)
        """
        check_is_fitted(self)
        X, streamed = self._validate_input(X, reset=False)
        with self._assay_mode():
            return to_numpy(self._encode_all(X, self.latent_shape_, streamed=streamed)[0])

    def inverse_transform(self, X) -> np.ndarray:
        """Decode latent codes into samples shaped like the input seen at fit.

        Parameters
        ----------
        X : array-like or tensor of shape (n_samples, n_latent) or ``(n_samples, *latent_shape_)``

        Returns
        -------
        ndarray of shape (n_samples, ``*sample_shape_``)
        """
        check_is_fitted(self)
        Z = self._check_latents(X, "X")
        with self._assay_mode():
            decoded = self._map_latents(self._decode, Z, "decoding", name="X")
        return decoded.reshape(len(decoded), *self.sample_shape_)

    def response(self, Z) -> np.ndarray:
        """The latent response ``r(z) = e(g(z))``.

        Parameters
        ----------
        Z : array-like or tensor of shape (n_samples, n_latent) or ``(n_samples, *latent_shape_)``

        Returns
        -------
        ndarray of the shape of ``Z``
        """
        check_is_fitted(self)
        flat = self._check_latents(Z, "Z")
        shape = tuple(Z.shape) if hasattr(Z, "shape") else np.shape(Z)
        with self._assay_mode():
            responses = self._map_latents(self._respond, flat, "responses")
        return responses.reshape(shape)

    def score(self, X, y=None) -> float:
        """Centred explained variance of the reconstruction ``decode(encode(X))``.

        ``1 - ||X - X_hat||^2 / ||X - mean(X)||^2`` over all entries, the same meaning as
        :meth:`ArchetypalAnalysis.score`: 1 is a perfect reconstruction, 0 is no better than
        the mean sample. Greater is better.

        Parameters
        ----------
        X : array-like, tensor, Dataset, DataLoader or iterable of batches
            Inputs the encoder accepts, of shape (n_samples, ...) (e.g. images
            ``(n, c, h, w)``); see the class docstring for streamed inputs.
        y : Ignored

        Returns
        -------
        float
        """
        check_is_fitted(self)
        X, streamed = self._validate_input(X, reset=False)
        count, residual, mean, spread = 0, 0.0, 0.0, 0.0
        with self._assay_mode():
            for _, (n, batch_residual, batch_mean, batch_spread) in self._map_input(
                self._reconstruction_terms, X, "scoring", streamed=streamed
            ):
                # Chan et al.'s pairwise update: the centred sum of squares, batch by batch.
                total = count + n
                delta = batch_mean - mean
                mean = mean + delta * (n / total)
                spread = spread + batch_spread + delta.square() * (count * n / total)
                count, residual = total, residual + batch_residual.item()
        spread = spread.sum().item()
        if spread == 0:  # constant data: only a perfect reconstruction explains it
            return float(residual == 0)
        return float(1.0 - residual / spread)

    def _reconstruction_terms(self, batch: torch.Tensor):
        """A batch's size, squared reconstruction error, feature means and centred squares."""
        samples = batch.flatten(1).double()
        latents = self._encode(batch).reshape(len(batch), -1)
        reconstruction = self._decode(latents).flatten(1).double()
        mean = samples.mean(dim=0)
        return (len(samples), (samples - reconstruction).square().sum(), mean,
                (samples - mean).square().sum(dim=0))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.non_deterministic = False
        return tags

    @property
    def _n_features_out(self) -> int:
        """Number of latent columns, for ``get_feature_names_out``."""
        return self.n_latent_

    # ------------------------------------------------------------------ factors
    def conditioned_response_matrix(self, X, factors, *, n_traversals: int = 50,
                                    n_draws: int = 32, per_traversal: bool = False) -> np.ndarray:
        """How much each latent responds to interventions that differ in one true factor.

        A traversal of factor ``k`` is a group of samples sharing every other factor.
        For ``n_traversals`` random traversals of each factor, ``n_draws`` base points are
        drawn from the group and each intervention (each coordinate, or each group of
        ``dims``) takes its values from a *different* member of the group; the entry for
        traversal ``t`` and intervention ``j`` is the RMS of ``r(z~) - r(z)`` over the draws
        and over ``j``'s own coordinates, and ``C[k, j]`` its mean over the traversals.
        ``normalize`` applies to each coordinate as for :attr:`response_matrix_`.

        Parameters
        ----------
        X : array-like, tensor, Dataset, DataLoader or iterable of batches
            Inputs the encoder accepts, of shape (n_samples, ...) (e.g. images
            ``(n, c, h, w)``); see the class docstring for streamed inputs.
            Streamed inputs must yield their samples in a fixed order: a DataLoader with
            ``shuffle=True`` is refused.
        factors : array-like of shape (n_samples, n_factors)
            Ground-truth factor values of each sample (any comparable values): row ``i``
            belongs to the ``i``-th sample ``X`` yields.
        n_traversals : int, default=50
            Traversals drawn per factor (all of them when there are fewer).
        n_draws : int, default=32
            Base points drawn per traversal.
        per_traversal : bool, default=False
            Return each traversal's entries instead of their mean.

        Returns
        -------
        ndarray of shape (n_factors, n_interventions), or (n_factors, n_traversals,
        n_interventions) with ``per_traversal=True``, where the rows of a factor with
        fewer traversals than ``n_traversals`` are NaN after its last (so that
        ``numpy.nanmean(..., axis=1)`` gives the matrix).
        """
        check_is_fitted(self)
        for name, count in (("n_traversals", n_traversals), ("n_draws", n_draws)):
            if not (isinstance(count, Integral) and count >= 1):
                raise ValueError(f"{name} must be a positive integer; got {count!r}.")
        X, streamed = self._validate_input(X, reset=False)
        _refuse_shuffled(X)
        batches = batch_reader(X, self.batch_size)
        factors = _check_factors(factors, batches.n_samples)
        rng = check_random_state(self.random_state)
        groups = intervention_groups(self.dims, self.latent_shape_)
        scales = self._column_scales()
        with self._assay_mode():
            latents, _ = self._encode_all(batches, self.latent_shape_, streamed=streamed)
            _check_factors(factors, len(latents))
            scales = latents.new_ones(self.n_latent_) if scales is None else latents.new_tensor(
                scales)
            traversals = [
                self._traversal_responses(latents, factors, k, groups, scales, n_traversals,
                                          n_draws, rng)
                for k in range(factors.shape[1])
            ]
        if not per_traversal:
            return np.stack([entries.mean(axis=0) for entries in traversals])
        padded = np.full((len(traversals), n_traversals, len(groups)), np.nan)
        for k, entries in enumerate(traversals):
            padded[k, :len(entries)] = entries
        return padded

    def _traversal_responses(self, latents, factors, k, groups, scales, n_traversals,
                             n_draws, rng) -> np.ndarray:
        """Per traversal of factor ``k``, the RMS own-coordinate response, (n_traversals, k)."""
        group_of = _traversal_groups(factors, k)
        traversals = np.flatnonzero(np.bincount(group_of) >= 2)
        if len(traversals) == 0:
            raise ValueError(
                f"No two samples differ only in factor {k}; the conditioned response needs "
                "traversals (e.g. data on a full factorial grid of factors)."
            )
        chosen = rng.choice(traversals, size=min(n_traversals, len(traversals)), replace=False)
        base, partner = [], []
        for group in chosen:
            members = np.flatnonzero(group_of == group)
            position = rng.randint(len(members), size=n_draws)
            # A non-zero cyclic offset always lands on a different member, uniformly.
            offset = rng.randint(1, len(members), size=n_draws)
            base.append(members[position])
            partner.append(members[(position + offset) % len(members)])
        index = torch.as_tensor(np.concatenate(base), device=latents.device)
        donors = torch.as_tensor(np.concatenate(partner), device=latents.device)
        sizes = torch.as_tensor(groups.sizes(), dtype=latents.dtype, device=latents.device)
        squares = latents.new_zeros(len(groups), len(index))
        with torch.inference_mode():
            for interventions, rows, differences, mask in response_differences(
                self._respond, latents[index], latents, donors.expand(len(groups), -1), groups,
                batch_size=self.batch_size,
            ):
                own = ((differences * scales).square() * mask[:, None, :]).sum(dim=2)
                squares[interventions, rows] = own / sizes[interventions, None]
        per_traversal = to_numpy(squares).reshape(len(groups), len(chosen), n_draws).mean(axis=2)
        return np.sqrt(per_traversal).T

    def causal_disentanglement_score(self, X, factors, *, n_traversals: int = 50,
                                     n_draws: int = 32) -> float:
        """Causal disentanglement score, in ``[1 / n_factors, 1]``.

        ``CDS = sum_j max_k C[k, j] / sum_{k, j} C[k, j]`` with ``C`` the
        :meth:`conditioned_response_matrix`; 1 when every latent responds to one factor only.

        Parameters
        ----------
        X : array-like, tensor, Dataset, DataLoader or iterable of batches
            Inputs the encoder accepts, of shape (n_samples, ...) (e.g. images
            ``(n, c, h, w)``); see the class docstring for streamed inputs.
        factors : array-like of shape (n_samples, n_factors)
            Row ``i`` belongs to the ``i``-th sample ``X`` yields.
        n_traversals, n_draws : int, default=50, 32
            As for :meth:`conditioned_response_matrix`.

        Returns
        -------
        float
        """
        matrix = self.conditioned_response_matrix(X, factors, n_traversals=n_traversals,
                                                  n_draws=n_draws)
        total = matrix.sum()
        if total == 0:
            raise ValueError(
                "No latent responds to any factor (the conditioned response matrix is zero); "
                "the causal disentanglement score is undefined."
            )
        return float(matrix.max(axis=0).sum() / total)

    # ------------------------------------------------------------------ maps
    def response_map(self, dims=(0, 1), base=None, extent: float | None = None,
                     n_grid: int = 64, *, bounds=None) -> Bunch:
        """The response field ``r(z) - z`` on a 2-D slice of the latent space.

        Latents equal ``base`` except coordinates ``dims`` that sweep a window on an
        ``n_grid`` x ``n_grid`` grid: ``base[dims] +/- extent``, or the absolute ``bounds``.
        Arrays are indexed ``[row, column]`` with rows along ``dims[1]`` and columns along
        ``dims[0]``, so ``imshow(..., origin="lower")`` draws them in latent coordinates.
        Derivatives are per latent unit.

        Parameters
        ----------
        dims : pair of coordinates, default=(0, 1)
            Two different latent coordinates, each a flat index or a multi-index into
            ``latent_shape_`` (e.g. ``((0, 3, 4), (1, 3, 4))``: channels 0 and 1 at pixel
            (3, 4) of a spatial latent).
        base : array-like of shape (n_latent,) or ``latent_shape_``, default=None
            The point the slice goes through; ``None`` is the mean of the latent pool.
        extent : float, default=None
            Half-width of the window around ``base`` in latent units; 2.0 when neither
            ``extent`` nor ``bounds`` is given.
        n_grid : int, default=64
            Grid points per axis.
        bounds : ((low_a, high_a), (low_b, high_b)), default=None
            The window as absolute values along ``dims[0]`` and ``dims[1]`` (as the
            reference's ``[-r, r]^2``), instead of ``extent``.

        Returns
        -------
        Bunch with
            ``coordinates`` (two arrays of shape (n_grid,): along ``dims[0]`` and
            ``dims[1]``), ``field`` (n_grid, n_grid, 2), ``magnitude``, ``divergence`` and
            ``mean_curvature`` (each (n_grid, n_grid)), ``dims`` (flat) and ``base``.
            The mean curvature is ``-1/2 div(U / |U|)``; where the field vanishes the
            normalised field is 0 instead of NaN.
        """
        check_is_fitted(self)
        a, b = self._check_map_dims(dims)
        if not (isinstance(n_grid, Integral) and n_grid >= 3):
            raise ValueError(f"n_grid must be an integer >= 3; got {n_grid!r}.")
        base = self._map_base(base)
        axes = _map_axes(base[[a, b]], extent, bounds, n_grid)
        grid = SliceGrid(base.astype(self.latents_.dtype), (a, b), axes)
        with self._assay_mode():
            responses = self._map_latents(lambda Z: self._respond(Z)[:, [a, b]],
                                          grid.batches(self.batch_size), "response map")
        field = (responses - grid.values).astype(np.float64).reshape(n_grid, n_grid, 2)
        steps = (axes[0][1] - axes[0][0], axes[1][1] - axes[1][0])
        return Bunch(coordinates=axes, field=field, **map_summaries(field, steps),
                     dims=(a, b), base=base)

    def _check_map_dims(self, dims) -> tuple[int, int]:
        try:
            flat = [self._flat_coordinate(coordinate) for coordinate in dims]
        except (TypeError, ValueError):
            flat = []
        if len(flat) != 2 or flat[0] == flat[1]:
            raise ValueError(
                f"dims must be two different latent indices: flat coordinates in "
                f"[0, {self.n_latent_}) or multi-indices into latent_shape_ "
                f"{self.latent_shape_}; got {dims!r}."
            )
        return flat[0], flat[1]

    def _flat_coordinate(self, coordinate) -> int:
        if isinstance(coordinate, Integral) and not isinstance(coordinate, bool):
            if not 0 <= coordinate < self.n_latent_:
                raise ValueError(coordinate)
            return int(coordinate)
        return int(np.ravel_multi_index(tuple(coordinate), self.latent_shape_))

    def _map_base(self, base) -> np.ndarray:
        """The base point of a map as a flat float64 array."""
        if base is None:
            return self.latents_.mean(axis=0, dtype=np.float64)
        if is_tensor(base):
            base = to_numpy(_real_tensor(base, "base"))
        _refuse_complex(base, "base")
        base = check_array(np.asarray(base)[None], dtype=np.float64, allow_nd=True,
                           input_name="base")[0]
        if base.shape not in ((self.n_latent_,), self.latent_shape_):
            raise ValueError(
                f"base must have shape ({self.n_latent_},) or {self.latent_shape_}; got "
                f"{base.shape}."
            )
        return base.ravel()


def _first_images(batches: Lookahead):
    """The images of the first batch of an input, which the placement and the fit read."""
    if batches.head is None:
        raise ValueError(
            "X gave no samples: an empty input, or an iterator already used up (by an earlier "
            "fit, for instance). Pass a DataLoader or another input that can be read again."
        )
    return _checked_batch(batches.first_input)


def _checked_batch(batch):
    """A streamed batch of images, refused when it is not one: the checks an array gets whole."""
    if not (is_tensor(batch) or isinstance(batch, np.ndarray)):
        raise TypeError(
            f"X: LatentResponse reads batches of images, as tensors or arrays; got "
            f"{describe_batch(batch)}. Make the Dataset or DataLoader yield tensors or "
            f"(image, label) tuples."
        )
    _refuse_complex(batch, "X")
    if isinstance(batch, np.ndarray) and batch.dtype.kind not in "biuf":
        raise TypeError(
            f"X: a batch holds {batch.dtype} values; LatentResponse needs numbers (convert the "
            f"images to tensors in the Dataset, e.g. with a transform)."
        )
    if batch.ndim < 2:
        raise ValueError(
            f"X: a batch has shape {tuple(batch.shape)}; batches must have shape "
            f"(batch_size, ...) with at least two dimensions (add a feature axis)."
        )
    if is_tensor(batch) and batch.is_floating_point():
        check_finite(batch)
    return batch


def _refuse_shuffled(X) -> None:
    """Refuse a shuffling DataLoader, whose samples no rows of factors can follow."""
    if isinstance(X, DataLoader) and isinstance(X.sampler, RandomSampler):
        raise ValueError(
            "X: a DataLoader with shuffle=True yields its samples in a new random order on "
            "every pass, which the rows of factors cannot follow. Pass a DataLoader with "
            "shuffle=False (factors row i is the i-th sample it yields)."
        )


def _check_factors(factors, n_samples: int | None) -> np.ndarray:
    """``factors`` as an array of one row per sample of X (``n_samples``, None when unknown)."""
    factors = check_array(factors, dtype=None, ensure_all_finite=False, input_name="factors")
    if n_samples is not None and len(factors) != n_samples:
        raise ValueError(
            f"factors must have one row per sample of X, in the order X yields them: X has "
            f"{n_samples} samples, factors has {len(factors)} rows."
        )
    return factors


def _check_model_output(output: torch.Tensor, inputs: torch.Tensor, role: str, source: str):
    """Refuse a model output with the wrong number of rows, complex values, NaN or infinity."""
    if output.ndim == 0 or len(output) != len(inputs):
        raise ValueError(
            f"The {role} returned shape {tuple(output.shape)} for a batch of {len(inputs)} "
            f"{source}: it must return one row per input row (it dropped, merged or "
            f"transposed rows). Check the {role}'s batch dimension."
        )
    if output.is_complex():
        raise ValueError(f"The {role} returned complex values ({output.dtype}); it must return "
                         "real tensors.")
    if not (math.isfinite(output.sum().item()) or bool(torch.isfinite(output).all())):
        bad = int((~torch.isfinite(output)).flatten(1).any(dim=1).sum())
        raise ValueError(
            f"The {role} returned NaN or infinite values for {bad} of {len(output)} {source}; "
            "check the model and the scale of its inputs."
        )


def _check_latent_shape(latents: torch.Tensor, expected) -> tuple[int, ...]:
    """The per-sample latent shape of an encoder output, checked against ``expected``."""
    shape = tuple(latents.shape[1:])
    if latents.ndim < 2:
        raise ValueError(
            f"The encoder must return latent codes of shape (n_samples, *latent_shape); it "
            f"returned shape {tuple(latents.shape)}. Add a feature axis (e.g. z[:, None])."
        )
    if expected is not None and shape != expected:
        raise ValueError(
            f"The encoder returned latent codes of shape {shape} per sample, not {expected} "
            "as for earlier samples: every sample must have the same latent shape."
        )
    return shape


def _map_axes(centre, extent, bounds, n_grid: int) -> tuple[np.ndarray, np.ndarray]:
    """The values along the two axes of a map: ``centre +/- extent``, or ``bounds``."""
    if bounds is not None:
        if extent is not None:
            raise ValueError("Pass either extent (a window around base) or bounds, not both.")
        try:
            bounds = np.asarray(bounds, dtype=np.float64)
        except (TypeError, ValueError):
            bounds = np.empty(0)
        if (bounds.shape != (2, 2) or not np.isfinite(bounds).all()
                or not (bounds[:, 0] < bounds[:, 1]).all()):
            raise ValueError(
                "bounds must be ((low_a, high_a), (low_b, high_b)): finite, with low < high "
                f"on each axis; got {bounds!r}."
            )
        return tuple(np.linspace(low, high, n_grid) for low, high in bounds)
    extent = 2.0 if extent is None else extent
    if not (isinstance(extent, Real) and math.isfinite(extent) and extent > 0):
        raise ValueError(
            f"extent must be a positive finite number (the window's half-width around base, in "
            f"latent units); got {extent!r}. Pass bounds=((low_a, high_a), (low_b, high_b)) "
            "for a window of your own."
        )
    return tuple(value + np.linspace(-extent, extent, n_grid) for value in centre)


def _traversal_groups(factors: np.ndarray, k: int) -> np.ndarray:
    """Group label of each sample: samples share a label when all factors but ``k`` agree."""
    others = np.delete(factors, k, axis=1)
    if others.shape[1] == 0:
        return np.zeros(len(factors), dtype=np.intp)
    return np.unique(others, axis=0, return_inverse=True)[1].ravel()
