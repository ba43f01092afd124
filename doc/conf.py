"""Sphinx configuration of the skarchetype documentation.

``make html`` runs the gallery examples (with their figures); ``make html-noplot``
renders them without running. Both are strict: any warning fails the build.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, os.path.abspath(".."))

import skarchetype  # noqa: E402

project = "skarchetype"
author = "the skarchetype developers"
copyright = "2026, the skarchetype developers"
version = release = skarchetype.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # Ships MathJax and points mathjax_path at the copy, so the math renders offline.
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "alabaster"
html_static_path = []
html_theme_options = {
    "description": "Explain what trained neural networks have learned",
    # Wide enough for the examples' 100-column code and their printed tables.
    "page_width": "1240px",
    "body_max_width": "none",
}

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
# numpydoc renders the members itself; autosummary tables of members would duplicate them.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("skarchetype",),
    "download_all_examples": False,
    "matplotlib_animations": False,
    "remove_config_comments": True,
    # A cell ending in a plotting call shows its figure, not the repr of what it returned.
    "ignore_repr_types": r"matplotlib\.",
    # Each example's page states its running time; no timing table in the source tree.
    "write_computation_times": False,
}
