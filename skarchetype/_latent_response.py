"""LatentResponse: interventional assays of an autoencoder's latent space.

The latent response function of an autoencoder is ``r(z) = e(g(z))``: decode, then
re-encode with the posterior mean (Leeb et al., "Exploring the Latent Space of
Autoencoders with Interventional Assays", NeurIPS 2022). Intervening on one latent
coordinate and watching how ``r`` moves shows which dimensions the model uses, which
ones drive which, and where its learned manifold lies.
"""

from __future__ import annotations

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

from ._torch import (
    batch_slices,
    check_finite,
    evaluation_mode,
    is_tensor,
    map_batches,
    resolve_device,
    to_numpy,
    torch_dtype,
)

# Guards the normalisation of a vanishing response field (mean curvature) against 0 / 0.
_FIELD_EPS = 1e-12


def _posterior_mean(output, role: str = "encoder") -> torch.Tensor:
    """The mean of a model output: a tensor, a tuple (mean first), or ``.mean``/``.loc``."""
    if is_tensor(output):
        return output
    if isinstance(output, (tuple, list)) and output:
        return _posterior_mean(output[0], role)
    for attribute in ("mean", "loc"):
        try:
            value = getattr(output, attribute, None)
        except NotImplementedError:  # some distributions have no closed-form mean
            continue
        if is_tensor(value):
            return value
    raise TypeError(
        f"The {role} returned {type(output).__name__}; expected a tensor, a tuple whose first "
        "element is the mean, or an object with a tensor `.mean` or `.loc` (e.g. a "
        "torch.distributions.Distribution)."
    )


def _owning_module(function) -> torch.nn.Module | None:
    """The torch module a callable is, or is a bound method of."""
    if isinstance(function, torch.nn.Module):
        return function
    owner = getattr(function, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def _parameter_placement(*functions):
    """The (device, dtype) of the first parameter of the modules behind ``functions``, or Nones."""
    for function in functions:
        module = _owning_module(function)
        if module is None:
            continue
        for parameter in module.parameters():
            return parameter.device, parameter.dtype
    return None, None


def _intervened_copies(Z: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``Z`` followed by its ``d`` single-coordinate interventions, stacked along the batch.

    Parameters
    ----------
    Z : (b, d) base latents
    values : (b, d) intervention values; copy ``j`` gets ``values[:, j]`` in coordinate ``j``.

    Returns
    -------
    (d + 1, b, d) tensor: index 0 is ``Z``, index ``1 + j`` is ``Z`` with coordinate ``j`` replaced.
    """
    n_latent = Z.shape[1]
    copies = Z.unsqueeze(0).repeat(n_latent + 1, 1, 1)
    dims = torch.arange(n_latent, device=Z.device)
    copies[1 + dims, :, dims] = values.T
    return copies


def response_differences(respond, Z: torch.Tensor, values: torch.Tensor, *, batch_size: int):
    """Yield ``r(z~) - r(z)`` for every sample and every single-coordinate intervention.

    All ``d`` interventions of a chunk of base points go through ``respond`` as one batch of at
    most ``batch_size`` rows (plus the unintervened rows).

    Parameters
    ----------
    respond : callable, (m, d) tensor -> (m, d) tensor
    Z : (n, d) tensor of base latents
    values : (n, d) tensor of intervention values
    batch_size : int

    Yields
    ------
    rows : slice of the base points
    differences : (d, b, d) tensor, ``[j, n, i] = r_i(z~^{(n, j)}) - r_i(z^{(n)})``.
    """
    n_latent = Z.shape[1]
    chunk = max(1, batch_size // (n_latent + 1))
    for rows in batch_slices(len(Z), chunk):
        copies = _intervened_copies(Z[rows], values[rows])
        responses = respond(copies.reshape(-1, n_latent)).reshape(n_latent + 1, -1, n_latent)
        yield rows, responses[1:] - responses[:1]


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

    Parameters
    ----------
    encoder : callable
        Maps a batch of inputs to latent codes of shape (n, d): a torch module or any
        callable on tensors. It may return a tensor, a tuple whose first element is the
        mean, a ``torch.distributions.Distribution`` or any object with ``.mean`` or
        ``.loc``; the posterior mean is used.
    decoder : callable
        Maps latent codes (n, d) to a batch shaped like the input. Distribution outputs
        are reduced to their mean as for the encoder.
    n_samples : int, default=1024
        Number of encoded samples used as base points of the response matrix (all of them
        when the data has fewer).
    intervention : {"aggregate", "prior"}, default="aggregate"
        Where replacement values come from. ``"aggregate"``: the marginal of the encoded
        data (column ``j`` of the latent pool under a random permutation, drawn
        independently of the base point); ``"prior"``: a standard normal.
    normalize : {None, "std"}, default=None
        ``"std"`` divides column ``i`` by ``sqrt(2) * std(z_i)`` over the encoded data, so a
        perfect identity reads 1 with aggregate interventions. A coordinate that does not
        vary keeps a zero column. ``None`` keeps the raw RMS (``sqrt(2)`` for an identity
        on unit-variance codes).
    batch_size : int, default=256
        Most rows sent through the encoder or decoder at once.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where inputs are sent; the modules must live there. ``"auto"`` uses the device of
        the encoder's (or decoder's) parameters, else the device of a tensor input, else
        CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of base points and intervention values.
    verbose : int, default=0
        Print progress of the encoding and of the response passes.

    Attributes
    ----------
    latents_ : ndarray of shape (n_samples_fit, n_latent)
        Posterior means of the training data: the latent pool.
    latent_std_ : ndarray of shape (n_latent,)
        Standard deviation of each latent coordinate over the pool.
    response_matrix_ : ndarray of shape (n_latent, n_latent)
        Row ``j`` intervened, column ``i`` responding.
    n_latent_ : int
        Latent dimension ``d``.
    sample_shape_ : tuple of int
        Shape of one input sample; ``inverse_transform`` returns this shape.
    n_features_in_ : int
        Size of the second axis of ``X`` (channels for images).

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
        "intervention": [StrOptions({"aggregate", "prior"})],
        "normalize": [None, StrOptions({"std"})],
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
        intervention="aggregate",
        normalize=None,
        batch_size=256,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.decoder = decoder
        self.n_samples = n_samples
        self.intervention = intervention
        self.normalize = normalize
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ input and models
    def _validate_input(self, X, *, reset: bool):
        """Check ``X`` (array or tensor, 2-D or more) and record or compare its features."""
        if is_tensor(X):
            if X.ndim < 2 or len(X) == 0:
                raise ValueError(
                    f"X must be a tensor of shape (n_samples, ...) with at least one sample and "
                    f"two dimensions; got shape {tuple(X.shape)}."
                )
            if not X.is_floating_point():
                X = X.double()
            check_finite(X)
            return validate_data(self, X, skip_check_array=True, reset=reset)
        return validate_data(self, X, allow_nd=True, dtype=(np.float64, np.float32), reset=reset)

    def _place(self, X) -> None:
        """Resolve the device and dtype the models are fed with."""
        device, dtype = _parameter_placement(self.encoder, self.decoder)
        if self.device != "auto" or device is None:
            device = resolve_device(self.device, X)
        self._device = device
        self._dtype = dtype if dtype is not None else torch_dtype(X.dtype)

    def _encode(self, batch: torch.Tensor) -> torch.Tensor:
        latent = _posterior_mean(self.encoder(batch), "encoder")
        if latent.ndim != 2:
            raise ValueError(
                f"The encoder must return latent codes of shape (n_samples, n_latent); it returned "
                f"shape {tuple(latent.shape)} for a batch of shape {tuple(batch.shape)}. Flatten "
                "the latent inside the encoder."
            )
        return latent

    def _decode(self, Z: torch.Tensor) -> torch.Tensor:
        return _posterior_mean(self.decoder(Z), "decoder")

    def _respond(self, Z: torch.Tensor) -> torch.Tensor:
        return self._encode(self._decode(Z))

    def _encode_all(self, X, description: str = "encoding") -> torch.Tensor:
        """Posterior means of every sample of ``X``, as one tensor on the model device."""
        latents = torch.cat([latent for _, latent in map_batches(
            self._encode, X, batch_size=self.batch_size, device=self._device, dtype=self._dtype,
            verbose=self.verbose, description=description,
        )])
        if not torch.isfinite(latents).all():
            bad = int((~torch.isfinite(latents)).any(dim=1).sum())
            raise ValueError(
                f"The encoder returned NaN or infinite latents for {bad} of {len(latents)} "
                "samples; check the model and its input scaling."
            )
        return latents

    def _map_latents(self, function, Z, description: str) -> np.ndarray:
        """Apply ``function`` to batches of latents ``Z`` and gather the numpy result."""
        Z = self._check_latents(Z)
        parts = [to_numpy(out) for _, out in map_batches(
            function, Z, batch_size=self.batch_size, device=self._device, dtype=self._dtype,
            verbose=self.verbose, description=description,
        )]
        return np.concatenate(parts)

    def _check_latents(self, Z):
        if not is_tensor(Z):
            Z = check_array(Z, dtype=(np.float64, np.float32))
        if Z.ndim != 2 or Z.shape[1] != self.n_latent_:
            raise ValueError(
                f"Latent codes must have shape (n_samples, {self.n_latent_}); got shape "
                f"{tuple(Z.shape)}."
            )
        return Z

    def _check_chain(self, latents: torch.Tensor) -> None:
        """Fail early, with a clear message, when decode(encode(x)) cannot be compared with x."""
        try:
            with torch.inference_mode():
                decoded = self._decode(latents[:2])
                recoded = self._encode(decoded)
        except RuntimeError as error:
            raise ValueError(
                f"Decoding latents of shape {tuple(latents[:2].shape)} and encoding the result "
                f"failed: the encoder and decoder do not chain ({error})."
            ) from error
        expected = int(np.prod(self.sample_shape_))
        if decoded[0].numel() != expected or recoded.shape != latents[:2].shape:
            raise ValueError(
                f"The encoder and decoder do not chain: inputs have sample shape "
                f"{self.sample_shape_}, the decoder returned {tuple(decoded.shape[1:])} and "
                f"re-encoding gave {tuple(recoded.shape)} for latents {tuple(latents[:2].shape)}."
            )

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Encode ``X`` and compute the response matrix.

        Parameters
        ----------
        X : array-like or tensor of shape (n_samples, ...)
            Inputs the encoder accepts (e.g. images ``(n, c, h, w)``).
        y : Ignored

        Returns
        -------
        self : LatentResponse
        """
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit and return the posterior means of ``X`` (the latent pool), shape (n_samples, d)."""
        return to_numpy(self._fit(X)).copy()

    def _fit(self, X) -> torch.Tensor:
        X = self._validate_input(X, reset=True)
        self._place(X)
        self.sample_shape_ = tuple(X.shape[1:])
        with evaluation_mode(self.encoder, self.decoder):
            latents = self._encode_all(X)
            self.n_latent_ = latents.shape[1]
            self._check_chain(latents)
            self.latents_ = to_numpy(latents)
            self.latent_std_ = self.latents_.std(axis=0)
            raw = self._response_matrix(latents, check_random_state(self.random_state))
        self.response_matrix_ = self._normalized(raw)
        return latents

    def _intervention_values(self, latents: torch.Tensor, n_base: int, rng) -> torch.Tensor:
        """(n_base, d) replacement values, independent of the base points."""
        n_pool, n_latent = latents.shape
        if self.intervention == "prior":
            values = rng.standard_normal((n_base, n_latent))
            return torch.as_tensor(values, dtype=latents.dtype, device=latents.device)
        # One independent permutation per column draws from each marginal without
        # replacement; fixed points are allowed, as they are in a draw from the marginal.
        columns = [torch.as_tensor(rng.permutation(n_pool)[:n_base], device=latents.device)
                   for _ in range(n_latent)]
        index = torch.stack(columns, dim=1)
        return torch.gather(latents, 0, index)

    def _response_matrix(self, latents: torch.Tensor, rng) -> np.ndarray:
        n_base = min(self.n_samples, len(latents))
        chosen = torch.as_tensor(rng.permutation(len(latents))[:n_base], device=latents.device)
        base = latents[chosen]
        values = self._intervention_values(latents, n_base, rng)
        squares = latents.new_zeros(self.n_latent_, self.n_latent_)
        with torch.inference_mode():
            for rows, differences in response_differences(
                self._respond, base, values, batch_size=self.batch_size
            ):
                squares += differences.square().sum(dim=1)
                if self.verbose:
                    print(f"[skarchetype] interventions: {rows.stop}/{n_base} base points")
        return to_numpy((squares / n_base).sqrt())

    def _normalized(self, matrix: np.ndarray) -> np.ndarray:
        """Divide column ``i`` by ``sqrt(2) std(z_i)`` when ``normalize="std"``."""
        if self.normalize is None:
            return matrix
        scale = np.sqrt(2) * self.latent_std_
        return matrix / np.where(scale > 0, scale, 1.0)

    # ------------------------------------------------------------------ transformer API
    def transform(self, X) -> np.ndarray:
        """Posterior means of ``X``.

        Parameters
        ----------
        X : array-like or tensor of shape (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples, n_latent)
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        with evaluation_mode(self.encoder):
            return to_numpy(self._encode_all(X))

    def inverse_transform(self, X) -> np.ndarray:
        """Decode latent codes into samples shaped like the input seen at fit.

        Parameters
        ----------
        X : array-like or tensor of shape (n_samples, n_latent)

        Returns
        -------
        ndarray of shape (n_samples, ``*sample_shape_``)
        """
        check_is_fitted(self)
        with evaluation_mode(self.decoder):
            decoded = self._map_latents(self._decode, X, "decoding")
        return decoded.reshape(len(decoded), *self.sample_shape_)

    def response(self, Z) -> np.ndarray:
        """The latent response ``r(z) = e(g(z))``.

        Parameters
        ----------
        Z : array-like or tensor of shape (n_samples, n_latent)

        Returns
        -------
        ndarray of shape (n_samples, n_latent)
        """
        check_is_fitted(self)
        with evaluation_mode(self.encoder, self.decoder):
            return self._map_latents(self._respond, Z, "responses")

    def score(self, X, y=None) -> float:
        """Centred explained variance of the reconstruction ``decode(encode(X))``.

        ``1 - ||X - X_hat||^2 / ||X - mean(X)||^2`` over all entries, the same meaning as
        :meth:`ArchetypalAnalysis.score`: 1 is a perfect reconstruction, 0 is no better than
        the mean sample. Greater is better.

        Parameters
        ----------
        X : array-like or tensor of shape (n_samples, ...)
        y : Ignored

        Returns
        -------
        float
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        reconstruction = self.inverse_transform(self.transform(X))
        X = to_numpy(X).astype(np.float64).reshape(len(X), -1)
        residual = np.square(X - reconstruction.reshape(len(X), -1)).sum()
        spread = np.square(X - X.mean(axis=0)).sum()
        if spread == 0:  # constant data: only a perfect reconstruction explains it
            return float(residual == 0)
        return float(1.0 - residual / spread)

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
                                    n_draws: int = 32) -> np.ndarray:
        """How much each latent responds to interventions that differ in one true factor.

        A traversal of factor ``k`` is a group of samples sharing every other factor.
        For ``n_traversals`` random traversals of each factor, ``n_draws`` base points are
        drawn from the group and latent ``j`` is replaced by its value at a *different*
        member of the group; ``C[k, j]`` is the RMS of ``r_j(z~) - r_j(z)``, averaged over
        the traversals. ``normalize`` applies as for :attr:`response_matrix_`.

        Parameters
        ----------
        X : array-like or tensor of shape (n_samples, ...)
        factors : array-like of shape (n_samples, n_factors)
            Ground-truth factor values of each sample (any comparable values).
        n_traversals : int, default=50
            Traversals drawn per factor (all of them when there are fewer).
        n_draws : int, default=32
            Base points drawn per traversal.

        Returns
        -------
        ndarray of shape (n_factors, n_latent)
        """
        check_is_fitted(self)
        for name, count in (("n_traversals", n_traversals), ("n_draws", n_draws)):
            if not (isinstance(count, Integral) and count >= 1):
                raise ValueError(f"{name} must be a positive integer; got {count!r}.")
        factors = self._check_factors(X, factors)
        rng = check_random_state(self.random_state)
        with evaluation_mode(self.encoder, self.decoder):
            latents = self._encode_all(self._validate_input(X, reset=False))
            rows = [self._conditioned_row(latents, factors, k, n_traversals, n_draws, rng)
                    for k in range(factors.shape[1])]
        return self._normalized(np.stack(rows))

    def _check_factors(self, X, factors) -> np.ndarray:
        factors = check_array(factors, dtype=None, ensure_all_finite=False)
        if len(factors) != len(X):
            raise ValueError(
                f"factors must have one row per sample of X: X has {len(X)} samples, factors "
                f"has {len(factors)} rows."
            )
        return factors

    def _conditioned_row(self, latents, factors, k, n_traversals, n_draws, rng) -> np.ndarray:
        """Mean over traversals of factor ``k`` of the diagonal response RMS, shape (d,)."""
        group_of = _traversal_groups(factors, k)
        sizes = np.bincount(group_of)
        traversals = np.flatnonzero(sizes >= 2)
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
        values = latents[torch.as_tensor(np.concatenate(partner), device=latents.device)]
        squares = latents.new_zeros(len(index), self.n_latent_)
        with torch.inference_mode():
            for rows, differences in response_differences(
                self._respond, latents[index], values, batch_size=self.batch_size
            ):
                squares[rows] = torch.diagonal(differences, dim1=0, dim2=2).square()
        per_traversal = to_numpy(squares).reshape(len(chosen), n_draws, -1).mean(axis=1)
        return np.sqrt(per_traversal).mean(axis=0)

    def causal_disentanglement_score(self, X, factors, **kwargs) -> float:
        """Causal disentanglement score, in ``[1 / n_factors, 1]``.

        ``CDS = sum_j max_k C[k, j] / sum_{k, j} C[k, j]`` with ``C`` the
        :meth:`conditioned_response_matrix`; 1 when every latent responds to one factor only.

        Parameters
        ----------
        X : array-like or tensor of shape (n_samples, ...)
        factors : array-like of shape (n_samples, n_factors)
        **kwargs
            Passed to :meth:`conditioned_response_matrix`.

        Returns
        -------
        float
        """
        matrix = self.conditioned_response_matrix(X, factors, **kwargs)
        total = matrix.sum()
        if total == 0:
            raise ValueError(
                "No latent responds to any factor (the conditioned response matrix is zero); "
                "the causal disentanglement score is undefined."
            )
        return float(matrix.max(axis=0).sum() / total)

    # ------------------------------------------------------------------ maps
    def response_map(self, dims=(0, 1), base=None, extent: float = 2.0, n_grid: int = 64) -> Bunch:
        """The response field ``r(z) - z`` on a 2-D slice of the latent space.

        Latents equal ``base`` except coordinates ``dims`` that sweep ``base[dims] +/- extent``
        on an ``n_grid`` x ``n_grid`` grid. Arrays are indexed ``[row, column]`` with rows
        along ``dims[1]`` and columns along ``dims[0]``, so ``imshow(..., origin="lower")``
        draws them in latent coordinates. Derivatives are per latent unit.

        Parameters
        ----------
        dims : tuple of two int, default=(0, 1)
        base : array-like of shape (n_latent,), default=None
            The point the slice goes through; ``None`` is the mean of the latent pool.
        extent : float, default=2.0
            Half-width of the slice in latent units.
        n_grid : int, default=64
            Grid points per axis.

        Returns
        -------
        Bunch with
            ``coordinates`` (two arrays of shape (n_grid,): along ``dims[0]`` and
            ``dims[1]``), ``field`` (n_grid, n_grid, 2), ``magnitude``, ``divergence`` and
            ``mean_curvature`` (each (n_grid, n_grid)), ``dims`` and ``base``.
            The mean curvature is ``-1/2 div(U / |U|)``; where the field vanishes the
            normalised field is 0 instead of NaN.
        """
        check_is_fitted(self)
        a, b = self._check_dims(dims)
        if not (isinstance(n_grid, Integral) and n_grid >= 3):
            raise ValueError(f"n_grid must be an integer >= 3; got {n_grid!r}.")
        if not (isinstance(extent, Real) and extent > 0):
            raise ValueError(f"extent must be a positive number; got {extent!r}.")
        base = self.latents_.mean(axis=0) if base is None else np.asarray(base, dtype=np.float64)
        if base.shape != (self.n_latent_,):
            raise ValueError(f"base must have shape ({self.n_latent_},); got {base.shape}.")
        axis_a = base[a] + np.linspace(-extent, extent, n_grid)
        axis_b = base[b] + np.linspace(-extent, extent, n_grid)
        grid_a, grid_b = np.meshgrid(axis_a, axis_b)  # [row = dims[1], column = dims[0]]
        Z = np.tile(base, (n_grid * n_grid, 1))
        Z[:, a], Z[:, b] = grid_a.ravel(), grid_b.ravel()
        Z = Z.astype(self.latents_.dtype)
        field = (self.response(Z) - Z)[:, [a, b]].astype(np.float64).reshape(n_grid, n_grid, 2)
        step = axis_a[1] - axis_a[0]
        magnitude = np.linalg.norm(field, axis=-1)
        normals = field / np.maximum(magnitude, _FIELD_EPS)[..., None]
        return Bunch(
            coordinates=(axis_a, axis_b), field=field, magnitude=magnitude,
            divergence=_divergence(field, step), mean_curvature=-0.5 * _divergence(normals, step),
            dims=(a, b), base=base,
        )

    def _check_dims(self, dims) -> tuple[int, int]:
        if (len(dims) != 2 or dims[0] == dims[1]
                or not all(isinstance(d, Integral) and 0 <= d < self.n_latent_ for d in dims)):
            raise ValueError(
                f"dims must be two different latent indices in [0, {self.n_latent_}); got {dims!r}."
            )
        return int(dims[0]), int(dims[1])


def _divergence(field: np.ndarray, step: float) -> np.ndarray:
    """``dU_a/dz_a + dU_b/dz_b`` of a (rows = b, columns = a, 2) field on a grid of ``step``."""
    d_along_a = np.gradient(field[..., 0], step, axis=1)
    d_along_b = np.gradient(field[..., 1], step, axis=0)
    return d_along_a + d_along_b


def _traversal_groups(factors: np.ndarray, k: int) -> np.ndarray:
    """Group label of each sample: samples share a label when all factors but ``k`` agree."""
    others = np.delete(factors, k, axis=1)
    if others.shape[1] == 0:
        return np.zeros(len(factors), dtype=np.intp)
    return np.unique(others, axis=0, return_inverse=True)[1].ravel()
