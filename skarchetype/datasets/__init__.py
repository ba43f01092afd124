"""Data generators with known answers: planted archetypes and procedural sprites."""

from ._archetypal import BENCHMARK_SETS, load_benchmark_data, make_archetypal_data
from ._sprites import make_sprites

__all__ = ["BENCHMARK_SETS", "load_benchmark_data", "make_archetypal_data", "make_sprites"]
