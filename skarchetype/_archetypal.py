"""ArchetypalAnalysis: the estimator, and :func:`archetypal_analysis` beside it."""

from __future__ import annotations

import dataclasses
import math
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from joblib import Parallel, delayed
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._solvers import (
    INITIALISATIONS,
    CentredRows,
    carry_over,
    fit_archetypes,
    simplex_least_squares,
    squared_error,
)
from ._solvers._distributed import (
    DistributedRows,
    agree,
    array_fingerprint,
    broadcast,
    check_process_group,
)
from ._torch import check_finite, is_tensor, resolve_device, to_numpy, torch_dtype
from ._validation import check_numeric_columns

_TRANSFORM_MAX_ITER = 2_000
# The data are rescaled so that their largest entry lies in [1/2, 1): float64 data whose
# centred entries have a root-mean-square below this, as a fraction of that entry, would
# lose their spread to float32's underflow, and are fitted in float64 throughout.
_FLOAT32_MIN_SPREAD = 1e-12
# Data of at most this many entries (2 MiB in float64) are fitted in float64 whatever
# their dtype and precision: there float32 saved at most 7 % (digits, 0.34 s a fit;
# 2 000 rows of synth20k, 0.12 s; on 2 000 and 5 000 rows of planted float64 was the
# faster, while 5 000 rows of relu30k, 480 000 entries, gained 25 %), and float64 makes
# fits of standardised data equal up to rounding (sharded, streamed) equal
_FLOAT64_MAX_ENTRIES = 2**18
# Below this relative suboptimality a degenerate (non-unique) solution is not worth a warning.
_ACCEPTABLE_GAP = 1e-3
# n_init="auto": this many starts for data of at most this many entries (where a start
# usually takes well under a second) and at most 2 K features, one start otherwise
_AUTO_STARTS = 4
_AUTO_STARTS_MAX_ENTRIES = 100_000
# ... the starts after a FurthestSum first one seeded by this initialisation: FurthestSum
# picks nearly the same rows from every seed, so its further starts end where the first did
_AUTO_FURTHER_INIT = "aa++"
# starts whose losses differ by less than this (relative), or ``tol``, count as equal
_EQUAL_LOSS = 1e-5


def _kept_start(fits, tol: float):
    """The first start whose loss is within ``max(tol, _EQUAL_LOSS)`` (relative) of the
    smallest.

    Starts that end at one optimum differ by rounding and by the order of their
    archetypes: keeping the first of them, not the one rounding favours, keeps the same
    archetypes for data equal up to rounding (sharded, streamed, rescaled).
    """
    smallest = min(fit.sse for fit in fits)
    return next(fit for fit in fits if fit.sse <= smallest * (1 + max(tol, _EQUAL_LOSS)))


class ArchetypalAnalysis(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Archetypal analysis: samples as convex mixtures of extreme convex mixtures of samples.

    Finds ``K`` archetypes ``Z = C X`` that are convex combinations of the samples and
    writes every sample as a convex combination of them, ``X ≈ S Z``, minimising
    ``||X - S C X||_F^2`` with the rows of ``S`` (n_samples x K) and ``C`` (K x n_samples)
    on the probability simplex (Cutler & Breiman 1994). The solver follows PCHA
    (Mørup & Hansen 2012): alternating projected-gradient blocks, here with ``C``
    restricted to a working set ``W`` of candidate rows that is grown until the KKT
    conditions of the full problem hold (and, for data of at most 64 features, its
    block solved exactly), and accelerated steps on ``S``. An iteration
    reads the data twice; besides the data, memory is ``O(N K + |W| (D + |W|))``, where
    ``|W|`` is a few tens of rows per archetype; nothing of size N x N is formed.

    The fit is translation invariant, so the data are centred internally: the
    archetypes of ``X + c`` are those of ``X`` shifted by ``c``. It is also scale
    equivariant, and the data are rescaled internally by a power of two: ``X * 2**e``
    gives the archetypes of ``X`` times ``2**e`` and the same coefficients, at any scale
    float32 or float64 can represent. Computation runs in torch,
    on the CPU or a CUDA device; results have the dtype of ``X`` (float32 stays float32,
    and float64 results are computed in float64: see ``precision``).

    Parameters
    ----------
    n_archetypes : int, default=4
        Number of archetypes ``K``.
    init : {"furthest_sum", "aa++", "random"} or array-like of shape (n_archetypes, \
n_features), default="furthest_sum"
        Initial archetypes. ``"furthest_sum"``: samples with the largest summed distances
        (Mørup & Hansen 2012). ``"aa++"``: samples drawn by their squared distance to the
        hull of those already drawn (Mair & Sjölund 2023). ``"random"``: distinct random
        samples. An array gives the initial archetypes themselves.
    n_init : int or "auto", default="auto"
        Number of starts; the fit with the smallest loss is kept (the first of those
        within ``max(tol, 1e-5)`` of it, relative). ``"auto"``: 4 starts for small,
        low-dimensional data (at most 100 000 entries, ``n_samples * n_features`` over
        all processes' rows, and at most ``2 * n_archetypes`` features), 1 otherwise.
        There, with K close to the number of features, a single start often settles in
        a local optimum, and a start usually takes well under a second. The first start
        is the one ``n_init=1`` makes; with ``init="furthest_sum"`` the others start
        from ``"aa++"`` draws, since FurthestSum picks nearly the same samples from
        every seed. An ``init`` array makes one start.
    max_iter : int, default=1000
        Maximum number of outer iterations of each start. An iteration reads the data
        twice; most fits stop within a few hundred, but raw-scale data (features on
        scales orders of magnitude apart) and archetypes that nearly fill a
        low-dimensional space can take longer. A fit stopped here warns
        (``ConvergenceWarning``) with its last relative SSE change.
    tol : float, default=1e-6
        Relative tolerance on the loss, as PCHA's: a start stops when an iteration
        lowers the squared reconstruction error ``||X - S Z||^2`` by less than ``tol``
        times itself (or by less than the dtype's rounding noise of that error) and
        no sample outside the working set would improve an archetype. The rule is
        scale-free and does not loosen as the fit improves: with ``tol=1e-6`` a fit
        stops once an iteration gains less than a millionth of what is left to
        explain.
    delta : float, default=0.0
        PCHA's relaxation: each archetype's weights sum to a value in
        ``[1 - delta, 1 + delta]`` instead of 1, letting archetypes lie slightly outside
        the hull (scaled about the data mean).
    precision : {"mixed", "full"}, default="mixed"
        How float64 data are fitted. ``"mixed"``: the starts run in float32 (1.2 to
        1.4 times as fast on data of millions of entries), and the kept one continues
        in float64 until the float64 stopping rule holds, unless float32 already
        resolved ``tol`` (then its stop stands); the archetypes, coefficients and
        explained variance are then computed in float64. ``"full"``: every step in
        float64, so that standardised data equal up to float64 rounding (e.g.
        translated, sharded across processes, or streamed in blocks) give archetypes
        equal to about 1e-6; under ``"mixed"``, and on raw-scale data, whose fits
        magnify rounding, they agree to the resolution of ``tol`` instead. Float32 data
        are fitted in float32 either way. Data of at most 2**18 entries
        (``n_samples * n_features``, whatever their dtype), where float32 saves no
        time, and float64 data whose spread is below float32's range relative to their
        largest entry (not their scale, which is rescaled away) are fitted in float64
        throughout; the results keep ``X``'s dtype.
    batch_size : int or None, default=None
        If set, the data are read in blocks of this many rows and never copied: use it
        for read-only memory maps larger than memory. ``None`` holds the (centred)
        data on the device, which is fastest.
    device : str or torch.device, default="auto"
        Where to compute: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... ``"auto"`` uses the
        device of a tensor input, otherwise CUDA when available, otherwise the CPU.
    n_jobs : int or None, default=None
        Number of starts (``n_init``) run in parallel threads; the torch threads are
        shared out among them so that the cores are never oversubscribed. Ignored
        when ``distributed``: the starts then run one after the other.
    distributed : bool, default=False
        Fit across the processes of the initialised default ``torch.distributed``
        process group (gloo on CPUs, NCCL on GPUs), each calling ``fit`` with its own
        rows (at least one, any number per process) and the same parameters. The data
        are the processes' rows in rank order; they are never gathered: each iteration
        exchanges ``O(K D + K^2)`` numbers and a few candidate rows. Every process ends
        with the same ``archetypes_``, ``explained_variance_``, ``n_iter_`` and
        ``loss_curve_``. With the same ``random_state`` they equal a one-process fit of
        all the rows where both run to the optimum (``tol=1e-11``), or where both search
        in float64 on standardised data; otherwise fits stopped by the default ``tol``
        agree to about 1e-4 in SSE and 1e-3 of the data's scale in archetypes, since
        sums and products round differently when the rows are split (see
        :doc:`/user_guide/distributed`). ``coefficients_`` holds the process's own rows and
        ``archetype_weights_`` indexes rows globally in rank order. A check failing in
        one process raises in all. ``transform`` and ``score`` stay local.
        With ``random_state=None`` every process uses the seeds of rank 0.
        See :doc:`/user_guide/distributed`.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisations: the rows ``init`` picks and PCHA's random start of
        the coefficients, which also an ``init`` array's fit draws. Pass an int for
        reproducible fits.
    verbose : int, default=0
        1 prints progress at every working-set update, 2 at every iteration. In a
        distributed fit only rank 0 prints, since every rank holds the same numbers.

    Attributes
    ----------
    archetypes_ : ndarray of shape (n_archetypes, n_features)
        The archetypes ``Z = C X``.
    components_ : ndarray of shape (n_archetypes, n_features)
        The same array as ``archetypes_``, under the name decompositions use.
    coefficients_ : ndarray of shape (n_samples, n_archetypes)
        ``S``: each training sample's weights on the archetypes, solved exactly per row.
    archetype_weights_ : scipy.sparse.csr_array of shape (n_archetypes, n_samples)
        ``C``: each archetype's weights on the training samples (very sparse). With
        ``distributed=True``, ``n_samples`` counts the rows of all processes, numbered
        in rank order (rank 0's rows first).
    mean_ : ndarray of shape (n_features,)
        Mean of the training data.
    explained_variance_ : float
        Centred explained variance of the fit, ``1 - ||X - S Z||^2 / ||X - mean_||^2``.
    reconstruction_err_ : float
        Frobenius norm ``||X - S Z||_F`` of the training data.
    loss_curve_ : ndarray of shape (``n_iter_ + 1``,)
        Squared reconstruction error after initialisation and after every iteration
        of the kept start, in squared units of ``X`` (``inf`` or 0 where that is beyond
        float64's range, as for data near 1e300 or 1e-300).
    n_iter_ : int
        Number of outer iterations of the kept start.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    archetypal_analysis : The same as a function of arrays.
    sklearn.decomposition.NMF : Non-negative matrix factorisation.

    References
    ----------
    Cutler, A. & Breiman, L. (1994). Archetypal analysis. Technometrics 36(4).
    Mørup, M. & Hansen, L. K. (2012). Archetypal analysis for machine learning and data
    mining. Neurocomputing 80.
    Mair, S. & Sjölund, J. (2023). Archetypal Analysis++: Rethinking the initialization
    strategy. arXiv:2301.13748.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skarchetype import ArchetypalAnalysis
    >>> X = load_digits().data
    >>> aa = ArchetypalAnalysis(n_archetypes=6, random_state=0).fit(X)
    >>> aa.archetypes_.shape, aa.transform(X[:3]).shape
    ((6, 64), (3, 6))
    >>> bool(aa.transform(X[:3]).sum(axis=1).round(6).min() == 1)
    True
    """

    _parameter_constraints: dict = {
        "n_archetypes": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions(set(INITIALISATIONS)), "array-like"],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "delta": [Interval(Real, 0, 1, closed="left")],
        "precision": [StrOptions({"mixed", "full"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str, torch.device],
        "n_jobs": [Integral, None],
        "distributed": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_archetypes=4,
        *,
        init="furthest_sum",
        n_init="auto",
        max_iter=1000,
        tol=1e-6,
        delta=0.0,
        precision="mixed",
        batch_size=None,
        device="auto",
        n_jobs=None,
        distributed=False,
        random_state=None,
        verbose=0,
    ):
        self.n_archetypes = n_archetypes
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.delta = delta
        self.precision = precision
        self.batch_size = batch_size
        self.device = device
        self.n_jobs = n_jobs
        self.distributed = distributed
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the archetypes to ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix, Tensor} of shape (n_samples, n_features)
            Training data. A torch tensor is used where it lives with ``device="auto"``.
        y : Ignored

        Returns
        -------
        self : ArchetypalAnalysis
        """
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        """Fit the archetypes and return the training samples' coefficients ``S``.

        Parameters
        ----------
        X : {array-like, sparse matrix, Tensor} of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        ndarray of shape (n_samples, n_archetypes)
        """
        return self.fit(X).coefficients_.copy()

    def _fit(self, X):
        X, n_samples = self._training_data(X)
        if self.n_archetypes > n_samples:
            raise ValueError(
                f"n_archetypes={self.n_archetypes} must be at most the number of samples, "
                f"but X has n_samples={n_samples}; lower n_archetypes or pass more samples."
            )
        initial_archetypes = self._initial_archetypes()
        device, dtype = resolve_device(self.device, X), torch_dtype(X.dtype)
        small = n_samples * X.shape[1] <= _FLOAT64_MAX_ENTRIES
        precision = torch.float64 if small else dtype  # that of the fitted model
        # the scale covers an init array too, so that it is as representable as the data
        reach = 0.0 if initial_archetypes is None else float(np.abs(initial_archetypes).max())
        data = (self._rows(X, device, precision, reach) if small
                else self._search_data(X, device, dtype, reach))
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=self._n_starts(n_samples, X.shape[1]))
        if initial_archetypes is not None:
            seeds = seeds[:1]
        if self.distributed:
            seeds = broadcast(seeds)
        starts = list(zip(seeds, self._start_inits(len(seeds)), strict=True))
        fits = self._run_starts(data, starts, initial_archetypes)
        best = _kept_start(fits, self.tol)
        if precision != data.dtype:
            del data, fits  # the float32 copy of the data goes before the float64 one comes
            data = self._rows(X, device, precision, reach)
            best = self._finish(data, best)
        self._store(data, best, dtype)

    def _n_starts(self, n_samples: int, n_features: int) -> int:
        """``n_init``, with ``"auto"`` resolved for the rows of all processes."""
        if self.n_init != "auto":
            return self.n_init
        small = n_samples * n_features <= _AUTO_STARTS_MAX_ENTRIES
        return _AUTO_STARTS if small and n_features <= 2 * self.n_archetypes else 1

    def _start_inits(self, n_starts: int) -> list:
        """Each start's initialisation: ``init``, except that ``n_init="auto"`` seeds
        the starts after a FurthestSum one by AA++ draws."""
        if self.n_init == "auto" and isinstance(self.init, str) and self.init == "furthest_sum":
            return [self.init] + [_AUTO_FURTHER_INIT] * (n_starts - 1)
        return [self.init] * n_starts

    def _training_data(self, X):
        """The validated ``X`` and the number of samples of all processes together,
        after every process has passed its checks and agreed on the parameters."""
        if not self.distributed:
            X = self._validate(X, reset=True)
            return X, X.shape[0]
        check_process_group()
        X, shard_sizes = agree(lambda: self._validate(X, reset=True), self._fingerprint)
        return X, sum(shard_sizes)

    def _fingerprint(self, X) -> dict:
        """What every process of a distributed fit must share: the parameters that
        steer the solver, the number of features and the dtype."""
        params = {
            name: getattr(self, name)
            for name in ("n_archetypes", "n_init", "max_iter", "tol", "delta", "precision")
        }
        params["init"] = (
            self.init if isinstance(self.init, str) else array_fingerprint(np.asarray(self.init))
        )
        if isinstance(self.random_state, Integral):  # otherwise rank 0's seeds are used
            params["random_state"] = self.random_state
        return {**params, "n_features": X.shape[1], "dtype": str(torch_dtype(X.dtype))}

    def _rows(self, X, device, dtype, reach: float) -> CentredRows:
        """The centred training data, in scaled units that also cover ``reach``: this
        process's shard of all processes' rows when ``distributed``."""
        if self.distributed:
            return DistributedRows(X, device, dtype, block_size=self.batch_size, reach=reach)
        return CentredRows(X, device, dtype, block_size=self.batch_size, reach=reach)

    def _validate(self, X, reset: bool):
        """Check ``X`` and return a 2-D float32/float64 numpy array, memmap or tensor."""
        if is_tensor(X):
            return self._validate_tensor(X, reset)
        check_numeric_columns(X)
        X = validate_data(
            self, X, reset=reset, accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32],
            copy=False,
        )
        return X.toarray() if sp.issparse(X) else X

    def _validate_tensor(self, X: torch.Tensor, reset: bool) -> torch.Tensor:
        """The checks of ``validate_data`` for a tensor, without copying it off its device.

        A tensor that requires grad is used as its detached value (nothing is differentiated).
        """
        if X.layout != torch.strided:
            raise ValueError(
                f"Sparse tensors ({X.layout}) are not supported; pass X.to_dense(), or a "
                "scipy.sparse matrix."
            )
        X = X.detach()
        if X.is_complex():
            raise ValueError("Complex data not supported; pass the real part or the magnitude.")
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D tensor (n_samples, n_features), got shape {tuple(X.shape)}; "
                "reshape it, e.g. X.reshape(len(X), -1)."
            )
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(
                f"Found array with shape {tuple(X.shape)}; a minimum of 1 is required."
            )
        if X.dtype not in (torch.float32, torch.float64):
            X = X.to(torch.float64)
        check_finite(X)
        if reset:
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    def _initial_archetypes(self):
        """The ``init`` array checked against the data's shape, or None."""
        if isinstance(self.init, str):
            return None
        expected = (self.n_archetypes, self.n_features_in_)
        try:
            init = np.asarray(to_numpy(self.init), dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"init must be an array of numbers of shape (n_archetypes, n_features) = "
                f"{expected}, or one of {sorted(INITIALISATIONS)}; converting it failed: {error}"
            ) from None
        if init.shape != expected or not np.isfinite(init).all():
            raise ValueError(
                f"init must be a finite array of shape (n_archetypes, n_features) = {expected}, "
                f"got shape {init.shape}; or pass one of {sorted(INITIALISATIONS)}."
            )
        return init

    def _run_starts(self, data: CentredRows, starts, initial_archetypes):
        """Run every start, a seed and an initialisation each, in threads sharing the
        torch threads when ``n_jobs`` asks."""
        # a distributed start's collectives must run in the same order in every process
        n_jobs = 1 if self.distributed else min(len(starts), self.n_jobs or 1)
        if n_jobs <= 1:
            return [self._run_start(data, *start, initial_archetypes) for start in starts]
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // n_jobs))
        try:
            return Parallel(n_jobs=n_jobs, prefer="threads")(
                delayed(self._run_start)(data, *start, initial_archetypes) for start in starts
            )
        finally:
            torch.set_num_threads(threads)

    def _run_start(self, data: CentredRows, seed, init, initial_archetypes):
        rng = np.random.RandomState(seed)
        verbose = self._verbosity(data)
        centred = None
        if initial_archetypes is None:
            rows = INITIALISATIONS[init](data, self.n_archetypes, rng)
        else:
            centred = data.scaled(initial_archetypes) - data.mean
            distances = data.squared_norms - 2 * data.inner(centred)
            rows = data.argmax(-distances)
        fit = fit_archetypes(
            data, rows, initial_archetypes=centred, seed=rng.randint(2**31), delta=self.delta,
            max_iter=self.max_iter, tol=self.tol, verbose=verbose,
        )
        if verbose:
            print(f"[ArchetypalAnalysis] start with seed {seed}: EV "
                  f"{1 - fit.sse / max(data.total_sum_of_squares, 1e-300):.6f} "
                  f"after {fit.n_iter} iterations")
        return fit

    def _verbosity(self, data: CentredRows) -> int:
        """``verbose`` in the process that reports (rank 0 of a distributed fit), else 0."""
        return self.verbose if data.rank == 0 else 0

    def _search_data(self, X, device, dtype, reach: float) -> CentredRows:
        """The centred data the starts run on: in float32 for float64 ``X`` under
        ``precision="mixed"`` where float32 holds its spread, else in ``X``'s dtype."""
        if self.precision == "mixed" and dtype == torch.float64:
            data = self._rows(X, device, torch.float32, reach)
            # in scaled units, so relative to the largest entry
            rms = math.sqrt(data.total_sum_of_squares / data.n_samples / data.shape[1])
            if rms > _FLOAT32_MIN_SPREAD:
                return data
        return self._rows(X, device, dtype, reach)

    def _finish(self, data: CentredRows, coarse):
        """A float32 fit in the data's precision: carried over where its stopping rule
        resolved ``tol`` (its stall and pricing stand; the results are then computed in
        that precision), else continued there until that precision's rule holds."""
        verbose = self._verbosity(data)
        if coarse.converged and coarse.resolution <= self.tol:
            if verbose:
                print(f"[ArchetypalAnalysis] the kept start's stop resolves tol: its weights "
                      f"carry over to {data.dtype}")
            return carry_over(data, coarse)
        if verbose:
            print(f"[ArchetypalAnalysis] continuing the kept start in {data.dtype}")
        fine = fit_archetypes(
            data, start=coarse, delta=self.delta, max_iter=self.max_iter - coarse.n_iter,
            tol=self.tol, verbose=verbose,
        )
        return dataclasses.replace(
            fine, n_iter=coarse.n_iter + fine.n_iter,
            loss_curve=coarse.loss_curve + fine.loss_curve[1:],
            relative_change=fine.relative_change if fine.n_iter else coarse.relative_change,
        )

    def _store(self, data: CentredRows, fit, dtype: torch.dtype):
        """Set the fitted attributes from the kept start, polishing ``S`` per row; the
        arrays take ``dtype``, that of ``X``."""
        if not fit.converged:
            warnings.warn(
                f"ArchetypalAnalysis did not converge in max_iter={self.max_iter} iterations: "
                f"the last iteration lowered the SSE by {fit.relative_change:.1e} of itself, "
                f"against tol={self.tol:g}; increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        dtype = np.dtype(str(dtype).removeprefix("torch."))
        self.mean_ = to_numpy(data.unscaled(data.mean)).astype(dtype, copy=False)
        self.archetypes_ = to_numpy(data.unscaled(fit.archetypes + data.mean)).astype(
            dtype, copy=False
        )
        self.components_ = self.archetypes_
        coefficients, sse = self._project(data, fit.archetypes, fit.coefficients)
        self.coefficients_ = to_numpy(coefficients).astype(dtype, copy=False)
        total = data.total_sum_of_squares
        if total == 0:
            warnings.warn(
                "X has zero variance (all samples are equal); every archetype is that sample.",
                UserWarning,
                stacklevel=3,
            )
        self.explained_variance_ = 1.0 - sse / total if total > 0 else 1.0
        with np.errstate(over="ignore"):  # squared errors of data near 1e300 exceed float64
            self.reconstruction_err_ = float(np.ldexp(np.sqrt(max(sse, 0.0)), data.exponent))
            self.loss_curve_ = np.ldexp(np.asarray(fit.loss_curve), 2 * data.exponent)
        weights = sp.csr_array(
            (to_numpy(fit.weights).ravel(),
             (np.repeat(np.arange(self.n_archetypes), len(fit.working_set)),
              np.tile(fit.working_set, self.n_archetypes))),
            shape=(self.n_archetypes, data.n_samples),
        )
        weights.eliminate_zeros()
        self.archetype_weights_ = weights
        self.n_iter_ = fit.n_iter

    @staticmethod
    def _project(data: CentredRows, archetypes, start=None):
        """Per-row exact simplex least squares of the centred data on centred archetypes.

        Returns the coefficients, shape (n_samples, K), and the squared reconstruction
        error, both from one pass over the data. ``start`` is ``S^T``, shape (K, n_samples).
        """
        cross, gram = data.inner(archetypes), archetypes @ archetypes.T
        coefficients, worst_gap = simplex_least_squares(
            cross, gram, S=start, max_iter=_TRANSFORM_MAX_ITER
        )
        if worst_gap > _ACCEPTABLE_GAP:
            warnings.warn(
                f"Some samples' coefficients are still {worst_gap:.1e} (relative) from optimal "
                f"after {_TRANSFORM_MAX_ITER} iterations; the archetypes may be nearly "
                "collinear: try fewer archetypes.",
                ConvergenceWarning,
                stacklevel=4,
            )
        sse = squared_error(data.total_sum_of_squares, coefficients, cross, gram,
                            all_sum=data.all_sum)
        return coefficients.T.contiguous(), sse

    def _fitted_data(self, X):
        """Validate ``X`` for a fitted model and wrap it, centred on the training mean,
        with the centred archetypes, in scaled units that cover both."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        device = resolve_device(self.device, X)
        data = CentredRows(
            X, device, torch_dtype(X.dtype), block_size=self.batch_size, mean=self.mean_,
            reach=float(np.abs(self.archetypes_).max()),
        )
        return data, data.scaled(self.archetypes_) - data.mean

    def transform(self, X):
        """Each sample's convex weights on the archetypes.

        Solves ``min_s ||x - Z^T s||^2`` over the simplex for every row to convergence;
        a row's result does not depend on the other rows passed with it.

        Parameters
        ----------
        X : {array-like, sparse matrix, Tensor} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_archetypes)
        """
        data, archetypes = self._fitted_data(X)
        return to_numpy(self._project(data, archetypes)[0])

    def inverse_transform(self, X):
        """Samples from their weights on the archetypes: ``X @ archetypes_``.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_archetypes)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        check_numeric_columns(X)
        coefficients = check_array(
            to_numpy(X), dtype=self.archetypes_.dtype, ensure_2d=False, ensure_all_finite=False,
            input_name="X",
        )
        if coefficients.ndim != 2 or coefficients.shape[1] != self.n_archetypes:
            raise ValueError(
                f"Expected coefficients of shape (n_samples, {self.n_archetypes}), got "
                f"{coefficients.shape}; pass the output of transform."
            )
        if not np.isfinite(coefficients).all():
            raise ValueError(
                "X (the coefficients) contains NaN or infinity; pass finite coefficients, "
                "such as the output of transform."
            )
        return coefficients @ self.archetypes_

    def score(self, X, y=None):
        """Centred explained variance of ``X`` by its projection on the archetypes.

        ``1 - ||X - S Z||^2 / ||X - mean_||^2`` with ``S = transform(X)`` and ``mean_`` the
        training mean: 1 is a perfect reconstruction, 0 is no better than the mean.
        Greater is better. On the training data it equals ``explained_variance_``; it
        grows with ``n_archetypes`` (more archetypes never reconstruct worse), so to
        choose ``n_archetypes`` look for an elbow and for stability across seeds
        (see :func:`skarchetype.inspection.select_n_archetypes`), not for the maximum.

        Parameters
        ----------
        X : {array-like, sparse matrix, Tensor} of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        float
        """
        data, archetypes = self._fitted_data(X)
        _, sse = self._project(data, archetypes)
        total = data.total_sum_of_squares
        return 1.0 - sse / total if total > 0 else float(sse == 0)

    @property
    def _n_features_out(self):
        return self.n_archetypes

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def archetypal_analysis(X, n_archetypes=4, **params):
    """Archetypal analysis of ``X``, as arrays in and arrays out.

    Parameters
    ----------
    X : {array-like, sparse matrix, Tensor} of shape (n_samples, n_features)
    n_archetypes : int, default=4
    **params
        Any other parameter of :class:`ArchetypalAnalysis`.

    Returns
    -------
    archetypes : ndarray of shape (n_archetypes, n_features)
        ``Z = C X``.
    coefficients : ndarray of shape (n_samples, n_archetypes)
        ``S``, with ``X ≈ S Z``.
    archetype_weights : scipy.sparse.csr_array of shape (n_archetypes, n_samples)
        ``C``.

    Examples
    --------
    >>> import numpy as np
    >>> from skarchetype import archetypal_analysis
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> Z, S, C = archetypal_analysis(X, 4, random_state=0)
    >>> Z.shape, S.shape, C.shape
    ((4, 3), (200, 4), (4, 200))
    """
    model = ArchetypalAnalysis(n_archetypes, **params).fit(X)
    return model.archetypes_, model.coefficients_, model.archetype_weights_
