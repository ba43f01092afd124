"""The demo: small networks trained on built-in data, explained in an HTML report.

Run it with ``skarchetype demo --out DIR`` or :func:`run_demo`. The models and training
loops in ``_digits_models`` and ``_sprite_models`` also serve the examples.
"""

from ._run import run_demo

__all__ = ["run_demo"]
