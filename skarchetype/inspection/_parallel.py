"""Fitting many archetype models at once without oversubscribing the CPU."""

from __future__ import annotations

import contextlib

import torch
from joblib import Parallel, delayed, effective_n_jobs
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def _single_threaded():
    # n_jobs workers each running a multi-threaded BLAS or torch pool would fight for cores
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def _fit(estimator, X, single_threaded: bool):
    with _single_threaded() if single_threaded else contextlib.nullcontext():
        return estimator.fit(X)


def fit_estimators(estimators: list, X, *, n_jobs=None, verbose: int = 0) -> list:
    """Fit each (unfitted) estimator on ``X``, ``n_jobs`` at a time; the fitted estimators."""
    single_threaded = effective_n_jobs(n_jobs) > 1
    return Parallel(n_jobs=n_jobs, verbose=verbose)(
        delayed(_fit)(estimator, X, single_threaded) for estimator in estimators
    )
