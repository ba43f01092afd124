"""What an archetype is made of and what it gathers: exemplars, class composition, purity."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

from ._checks import as_finite_matrix, check_labels

_COUNT = [Interval(Integral, 1, None, closed="left")]


def _largest_per_row(matrix: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    if n_samples > matrix.shape[1]:
        raise ValueError(
            f"n_samples must be between 1 and {matrix.shape[1]} (the number of samples), "
            f"got {n_samples}."
        )
    top = np.argpartition(-matrix, n_samples - 1, axis=1)[:, :n_samples]
    values = np.take_along_axis(matrix, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)


@validate_params({"n_samples": _COUNT}, prefer_skip_nested_validation=True)
def generating_samples(archetype_weights, n_samples: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The samples each archetype is built from: the largest entries of each row of C.

    Parameters
    ----------
    archetype_weights : array-like of shape (n_archetypes, n_samples_fit)
        ``archetype_weights_`` of a fitted model (archetypes = C @ X).
    n_samples : int, default=5
        How many samples per archetype, by decreasing weight. C is usually sparse: weights
        past its support are zero.

    Returns
    -------
    indices : ndarray of shape (n_archetypes, n_samples)
        Row indices into the data the model was fitted on.
    weights : ndarray of shape (n_archetypes, n_samples)
    """
    return _largest_per_row(as_finite_matrix(archetype_weights, "archetype_weights"), n_samples)


@validate_params({"n_samples": _COUNT}, prefer_skip_nested_validation=True)
def nearest_samples(coefficients, n_samples: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The samples closest to each archetype: the largest entries of each column of S.

    Parameters
    ----------
    coefficients : array-like of shape (n_samples_data, n_archetypes)
        ``coefficients_`` of a fitted model, or the output of its ``transform``.
    n_samples : int, default=5
        How many samples per archetype, most archetypal first.

    Returns
    -------
    indices : ndarray of shape (n_archetypes, n_samples)
    coefficients : ndarray of shape (n_archetypes, n_samples)
        The archetype's coefficient in each of these samples (1 means the sample is the
        archetype).
    """
    return _largest_per_row(as_finite_matrix(coefficients, "coefficients").T, n_samples)


def class_composition(coefficients, y) -> tuple[np.ndarray, np.ndarray]:
    """The mean coefficient of each archetype over the samples of each class.

    Parameters
    ----------
    coefficients : array-like of shape (n_samples, n_archetypes)
    y : array-like of shape (n_samples,)
        Class labels.

    Returns
    -------
    composition : ndarray of shape (n_archetypes, n_classes)
        ``composition[k, c]`` is the mean over samples of class ``classes[c]`` of their
        coefficient on archetype ``k``.
    classes : ndarray of shape (n_classes,)
    """
    coefficients = as_finite_matrix(coefficients, "coefficients")
    y = check_labels(y, len(coefficients))
    classes, labels = np.unique(y, return_inverse=True)
    one_hot = np.eye(len(classes))[labels]
    return coefficients.T @ one_hot / one_hot.sum(axis=0), classes


@validate_params({"n_samples": _COUNT}, prefer_skip_nested_validation=True)
def archetype_purity(coefficients, y, n_samples: int = 10) -> np.ndarray:
    """How much each archetype's nearest samples belong to one class.

    Purity is ``1 - H(class | nearest samples) / log(n_classes)``: 1 when the ``n_samples``
    samples closest to the archetype share one class, 0 when their classes are uniform.

    Parameters
    ----------
    coefficients : array-like of shape (n_samples_data, n_archetypes)
    y : array-like of shape (n_samples_data,)
        Class labels, at least two classes.
    n_samples : int, default=10
        Nearest samples per archetype (see :func:`nearest_samples`).

    Returns
    -------
    purity : ndarray of shape (n_archetypes,)
    """
    coefficients = as_finite_matrix(coefficients, "coefficients")
    classes, labels = np.unique(check_labels(y, len(coefficients)), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"archetype_purity needs at least 2 classes in y, got {classes}.")
    indices, _ = nearest_samples(coefficients, n_samples)
    counts = np.stack([np.bincount(labels[row], minlength=len(classes)) for row in indices])
    shares = counts / n_samples
    logs = np.log(np.where(shares > 0, shares, 1.0))
    entropy = -(shares * logs).sum(axis=1)
    return 1.0 - entropy / np.log(len(classes))
