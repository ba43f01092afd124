"""matplotlib is an optional extra: import it only when a figure is asked for."""

from __future__ import annotations


def require_pyplot():
    """``matplotlib.pyplot``, or an ImportError saying how to install the plotting extra."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            'Plotting needs matplotlib: pip install "skarchetype[plots]"'
        ) from error
    return plt


def figure_and_axes(ax=None, **subplots_kwargs):
    """``(figure, ax)`` of the given axes, or of a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    plt = require_pyplot()
    return plt.subplots(**subplots_kwargs)
