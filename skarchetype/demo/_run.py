"""The demo's story: train small networks on built-in data, explain them, write the report.

Part one trains a CNN and a tiny vision transformer on scikit-learn's 8x8 digits and
describes each layer with archetypes; part two trains a VAE and a plain autoencoder on
procedural sprites and compares their latent responses. Everything is computed here,
nothing is downloaded, and every number in the report is measured in this run.
"""

from __future__ import annotations

import contextlib
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .. import __version__
from .._archetypal import ArchetypalAnalysis
from .._latent_response import LatentResponse
from .._layer_features import TorchLayerFeatures
from .._torch import resolve_device
from ..datasets import make_sprites
from ..inspection import (
    archetype_purity,
    class_composition,
    dataset_independence,
    explain_sample,
    generating_samples,
    nearest_samples,
    select_n_archetypes,
)
from ._digits_models import DigitsCNN, DigitsViT, load_digit_images, train_classifier
from ._report import Report
from ._sprite_models import SpriteAutoencoder, SpriteVAE, train_autoencoder


@dataclass(frozen=True)
class Settings:
    """How much work each part of the demo does."""

    n_digits: int | None
    classifier_epochs: int
    n_archetypes_grid: tuple[int, ...]
    n_seeds: int
    n_archetypes: int
    sprite_size: int
    sprite_positions: int
    autoencoder_epochs: int
    n_response_samples: int
    n_traversals: int
    map_grid: int


FULL = Settings(
    n_digits=None,
    classifier_epochs=12,
    n_archetypes_grid=(2, 4, 6, 8, 10, 12),
    n_seeds=3,
    n_archetypes=8,
    sprite_size=16,
    sprite_positions=8,
    autoencoder_epochs=20,
    n_response_samples=512,
    n_traversals=30,
    map_grid=48,
)
QUICK = Settings(
    n_digits=500,
    classifier_epochs=3,
    n_archetypes_grid=(2, 4, 6),
    n_seeds=2,
    n_archetypes=6,
    sprite_size=16,
    sprite_positions=4,
    autoencoder_epochs=4,
    n_response_samples=128,
    n_traversals=8,
    map_grid=24,
)

NETWORKS = {
    "CNN": (DigitsCNN, ("conv1", "conv2", "conv3", "head")),
    "ViT": (DigitsViT, ("patch_embedding", "blocks.0", "blocks.1", "blocks.2", "head")),
}
AUTOENCODERS = {"VAE": (SpriteVAE, 1.0), "plain AE": (SpriteAutoencoder, 0.0)}
N_LATENT = 6


class Progress:
    """Prints each step as it starts and ends, and keeps its duration for the report."""

    def __init__(self, verbose: int):
        self.verbose = verbose
        self.timings: list[tuple[str, float]] = []
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def step(self, name: str):
        if self.verbose:
            print(f"[demo {self.elapsed:5.0f} s] {name} ...", flush=True)
        start = time.perf_counter()
        yield
        self.timings.append((name, time.perf_counter() - start))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start


def run_demo(
    out,
    *,
    quick: bool = False,
    device="auto",
    random_state: int = 0,
    verbose: int = 1,
) -> Path:
    """Train small networks on built-in data, explain them, and write an HTML report.

    Parameters
    ----------
    out : path-like
        Folder for ``index.html`` and its figures; created if missing.
    quick : bool, default=False
        Less training and fewer fits: under a minute on a laptop CPU, for tests. The
        networks are then barely trained and the figures say little.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
    random_state : int, default=0
        Seeds the training and every fit.
    verbose : int, default=1
        Print each step as it runs.

    Returns
    -------
    Path
        The report's ``index.html``.
    """
    settings = QUICK if quick else FULL
    device = resolve_device(device)
    progress = Progress(verbose)
    report = Report(out, title="What small networks learned: a skarchetype demo")
    _introduction(report, quick)
    _digits_story(report, settings, device, random_state, progress)
    _sprites_story(report, settings, device, random_state, progress)
    _about_this_run(report, progress, device)
    meta = (
        f"skarchetype {__version__} · torch {torch.__version__} · device {device} · "
        f"{'quick' if quick else 'full'} run with seed {random_state}, "
        f"{progress.elapsed:.0f} s in all"
    )
    path = report.write(meta)
    if verbose:
        print(f"[demo {progress.elapsed:5.0f} s] done", flush=True)
    return path


def _introduction(report: Report, quick: bool) -> None:
    report.paragraph(
        "This report was written by `skarchetype demo`. It trains four small networks from "
        "scratch on data that ships with the package, then explains what they learned with "
        "the two methods of skarchetype. Every figure and number below was computed in this "
        "run; the sections say what to read from each."
    )
    if quick:
        report.paragraph(
            "This is a quick run (--quick): the networks trained for a few epochs only, so "
            "the figures show the mechanics of the analyses rather than well-trained models. "
            "Run `skarchetype demo` without --quick for the full story."
        )


# --------------------------------------------------------------------------- digits


@dataclass
class _Digits:
    images: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray


@dataclass
class _NetworkAnalysis:
    name: str
    predictions: np.ndarray
    features: dict
    selections: dict
    models: dict

    @property
    def deepest_hidden_layer(self) -> str:
        """The last layer before the logits."""
        return list(self.features)[-2]


def _digits_story(report, settings: Settings, device, seed: int, progress: Progress) -> None:
    images, labels = load_digit_images()
    images, labels = images[: settings.n_digits], labels[: settings.n_digits]
    train, test = train_test_split(
        np.arange(len(images)), test_size=0.25, stratify=labels, random_state=seed
    )
    digits = _Digits(images, labels, train, test)
    report.section("Archetypes of a CNN's and a ViT's layers")
    report.paragraph(
        "Archetypal analysis describes a set of points by K extreme points, the archetypes, "
        "such that every point is close to a convex mixture of them. Each archetype is itself "
        "a mixture of a few real inputs, so it can be shown; each input's mixture explains "
        "where the network placed it. Applied to the activations of one layer over a data set, "
        "the archetypes describe that layer's representation (Wedenborg et al., NLDL 2026)."
    )
    report.paragraph(
        f"A small CNN and a tiny vision transformer (ViT) were trained on {len(train)} of the "
        f"{len(images)} 8x8 handwritten digits of scikit-learn and tested on the other "
        f"{len(test)}. TorchLayerFeatures read their layers in one forward pass over all the "
        "images: convolution maps averaged over positions, the class token of each transformer "
        "block, and the output logits."
    )
    analyses = [
        _analyse_network(name, network_class, layers, digits, settings, device, seed, progress)
        for name, (network_class, layers) in NETWORKS.items()
    ]
    report.table(
        ["network", "test accuracy"],
        [[a.name, float(np.mean(a.predictions[test] == labels[test]))] for a in analyses],
        caption=f"Accuracy on the {len(test)} test digits (predictions: the largest logit).",
    )
    _report_layers(report, analyses, digits, settings)
    _report_independence(report, analyses, settings, device, seed)
    _report_archetypes(report, analyses[0], digits)
    _report_decision(report, analyses[0], digits)


def _analyse_network(
    name, network_class, layers, digits: _Digits, settings, device, seed, progress
) -> _NetworkAnalysis:
    with progress.step(f"train the {name} on the digits ({settings.classifier_epochs} epochs)"):
        torch.manual_seed(seed)
        network = network_class()
        train_classifier(
            network, digits.images[digits.train], digits.labels[digits.train],
            epochs=settings.classifier_epochs, random_state=seed, device=device,
        )
    with progress.step(f"read the {name}'s layers {', '.join(layers)}"):
        reader = TorchLayerFeatures(network, layers, device=device).fit(digits.images)
        columns = reader.transform(digits.images)
        features = {layer: columns[:, reader.layer_slices_[layer]] for layer in layers}
    # one start per seed: the sweep's seeds are its restarts, and their spread is the
    # stability it reports
    template = ArchetypalAnalysis(n_init=1, device=device)
    with progress.step(f"sweep K on the {name}'s {len(layers)} layers"):
        selections = {
            layer: select_n_archetypes(
                values, settings.n_archetypes_grid, estimator=template,
                n_seeds=settings.n_seeds, random_state=seed,
            )
            for layer, values in features.items()
        }
    with progress.step(f"fit K = {settings.n_archetypes} archetypes to each {name} layer"):
        models = {
            layer: ArchetypalAnalysis(
                n_archetypes=settings.n_archetypes, device=device, random_state=seed
            ).fit(values)
            for layer, values in features.items()
        }
    return _NetworkAnalysis(
        name=name,
        predictions=features[layers[-1]].argmax(axis=1),
        features=features,
        selections=selections,
        models=models,
    )


def _report_layers(report, analyses, digits: _Digits, settings: Settings) -> None:
    from ..plotting import plot_depth_profile, plot_selection

    report.subsection("How many archetypes does each layer need?")
    for analysis in analyses:
        report.figure(
            plot_selection(
                analysis.selections,
                title=f"{analysis.name}: explained variance and stability against K",
            ),
            f"selection_{analysis.name.lower()}",
            f"{analysis.name}, one line per layer. Left: the share of the layer's variance "
            "that K archetypes explain (centred), mean over seeds with a band of one standard "
            "deviation; the star marks the elbow, past which more archetypes add little. "
            "Right: the soft NMI between the fits of different seeds, 1 when every seed finds "
            "the same archetypes. A good K sits at or past the elbow while the NMI stays high.",
        )
    k = settings.n_archetypes
    rows, purity = [], {}
    for analysis in analyses:
        purity[analysis.name] = {}
        for layer, selection in analysis.selections.items():
            model = analysis.models[layer]
            layer_purity = float(archetype_purity(model.coefficients_, digits.labels).mean())
            purity[analysis.name][layer] = layer_purity
            stability = selection.stability[selection.n_archetypes == k]
            rows.append([
                analysis.name, layer, analysis.features[layer].shape[1],
                selection.best_n_archetypes, model.explained_variance_,
                float(stability[0]) if stability.size else "not swept", layer_purity,
            ])
    report.table(
        ["network", "layer", "features", "elbow K", f"EV at K={k}", f"NMI at K={k}",
         "class purity"],
        rows,
        caption=f"Each layer at the same K = {k}, so that layers compare. EV: centred "
        "explained variance. NMI: stability across seeds. Class purity: 1 when the ten images "
        "closest to an archetype show one digit, 0 when their digits are uniform (mean over "
        "archetypes).",
    )
    report.figure(
        plot_depth_profile(
            purity, ylabel="class purity of the archetypes", title="Class purity against depth"
        ),
        "purity_depth",
        "Class purity of the archetypes at each layer, from input (left) to output (right). "
        "Early layers group digits by strokes and ink that several digits share; deeper "
        "layers, which must separate the classes to classify them, should gather one digit "
        "per archetype.",
    )


def _report_independence(report, analyses, settings: Settings, device, seed: int) -> None:
    rows = []
    for analysis in analyses:
        layer = analysis.deepest_hidden_layer
        values = analysis.features[layer]
        half = len(values) // 2
        result = dataset_independence(
            values[:half], values[half:],
            ArchetypalAnalysis(n_archetypes=settings.n_archetypes, device=device,
                               random_state=seed),
        )
        rows.append([
            analysis.name, layer, result.explained_variance_own,
            result.explained_variance_transferred, result.nmi, result.matching.mean_cosine,
        ])
    report.table(
        ["network", "layer", "EV of B, own fit", "EV of B on A's archetypes", "NMI",
         "matched cosine"],
        rows,
        caption="Are the archetypes a property of the layer or of the sample? The images were "
        "split into two disjoint halves A and B. If archetypes fitted on A describe B almost "
        "as well as B's own (the two EV columns), split B alike (NMI) and point the same way "
        "(cosine of matched pairs, 1 = identical), they describe the layer.",
    )


def _report_archetypes(report, analysis: _NetworkAnalysis, digits: _Digits) -> None:
    from ..plotting import plot_class_composition, plot_exemplars

    layer = analysis.deepest_hidden_layer
    model = analysis.models[layer]
    report.subsection(f"The archetypes of the {analysis.name}'s layer {layer}")
    makers, _ = generating_samples(model.archetype_weights_, n_samples=1)
    closest, _ = nearest_samples(model.coefficients_, n_samples=7)
    report.figure(
        plot_exemplars(digits.images, np.hstack([makers, closest]),
                       title=f"{analysis.name} {layer}: each archetype's main maker (left) "
                       "and its seven closest images"),
        "exemplars",
        "One row per archetype. Left: the image with the largest weight in the archetype's "
        "construction (its row of C), often an extreme digit at the rim of the layer's "
        "representation. Then the seven images with the largest coefficient on it (its "
        "column of S): the typical members of its region. The first may repeat among them.",
    )
    compositions = {
        layer: class_composition(model.coefficients_, digits.labels)[0]
        for layer, model in analysis.models.items()
    }
    report.figure(
        plot_class_composition(
            compositions, title=f"{analysis.name}: class composition of each archetype, by layer"
        ),
        "class_composition",
        "Mean coefficient of each archetype (rows) over the images of each digit (columns), "
        "one panel per layer. A bright cell alone in its row is an archetype of one digit; a "
        "row spread over several digits is an archetype of a trait they share. From the "
        "first panel to the last, the digits separate.",
    )


def _report_decision(report, analysis: _NetworkAnalysis, digits: _Digits) -> None:
    import matplotlib.pyplot as plt

    from ..plotting import plot_exemplars, plot_explanation

    layer = analysis.deepest_hidden_layer
    wrong = digits.test[analysis.predictions[digits.test] != digits.labels[digits.test]]
    chosen = int(wrong[0]) if wrong.size else int(digits.test[0])
    verdict = "wrongly" if wrong.size else "correctly"
    explanation = explain_sample(
        analysis.models[layer], analysis.features[layer][chosen : chosen + 1]
    )
    report.subsection("One decision, explained")
    report.paragraph(
        f"Test image {chosen} shows a {digits.labels[chosen]}; the {analysis.name} {verdict} "
        f"called it a {analysis.predictions[chosen]}. At layer {layer}, it is this mixture of "
        "archetypes, plus a residual the archetypes leave unexplained."
    )
    figure, (image_ax, bar_ax) = plt.subplots(
        1, 2, figsize=(10, 2.6), width_ratios=(1, 5), constrained_layout=True
    )
    image_ax.imshow(digits.images[chosen, 0], cmap="gray_r")
    image_ax.set_title(f"test image {chosen}")
    image_ax.axis("off")
    plot_explanation(explanation, ax=bar_ax, title="its coefficients on the archetypes")
    report.figure(
        figure,
        "explanation",
        "The image (left) and its coefficients on the archetypes as one stacked bar (they sum "
        "to 1). The title gives the relative residual: small when the image lies within the "
        "archetypes' hull, large for an input unlike those they were fitted on.",
    )
    row_labels = [
        f"archetype {k}: {weight:.2f}"
        for k, weight in zip(explanation.top_archetypes, explanation.top_coefficients,
                             strict=True)
    ]
    report.figure(
        plot_exemplars(digits.images, explanation.exemplars, row_labels=row_labels,
                       title="The training images closest to its top archetypes"),
        "explanation_exemplars",
        "For each archetype carrying most of the image's weight (the weight after the "
        "colon), the training images closest to it. The decision follows the digits of the "
        "archetypes that carry the most weight.",
    )


# --------------------------------------------------------------------------- sprites


def _sprites_story(report, settings: Settings, device, seed: int, progress: Progress) -> None:
    from ..plotting import plot_conditioned_response_matrix, plot_response_matrix

    with progress.step("draw the sprites"):
        sprites = make_sprites(
            image_size=settings.sprite_size, n_positions=settings.sprite_positions
        )
    report.section("Latent responses of a VAE and a plain autoencoder")
    report.paragraph(
        "An autoencoder's latent space can be explored by intervening on it: change one "
        "latent coordinate, decode, encode again, and see which coordinates respond. The "
        "latent response r(z) = e(g(z)) keeps what the decoder renders and the encoder "
        "recognises, and pulls other points towards the learned manifold "
        "(Leeb et al., NeurIPS 2022)."
    )
    report.paragraph(
        f"Both models have {N_LATENT} latent dimensions and were trained on "
        f"{len(sprites.images)} procedural {settings.sprite_size}x{settings.sprite_size} "
        f"sprites, one for every combination of the factors {', '.join(sprites.factor_names)}. "
        "The VAE adds a KL term pulling its posterior towards a standard normal; the plain "
        "autoencoder only reconstructs."
    )
    assays = {}
    for name, (model_class, beta) in AUTOENCODERS.items():
        assays[name] = _analyse_autoencoder(
            name, model_class, beta, sprites, settings, device, seed, progress
        )
    report.table(
        ["model", "reconstruction (EV)", "used dimensions", "CDS"],
        [[name, a.score, a.n_used, a.cds] for name, a in assays.items()],
        caption="Reconstruction: centred explained variance of the decoded images. Used "
        "dimensions: diagonal entries of the normalised response matrix above 0.2. CDS: "
        "causal disentanglement score, from 1/5 (every latent responds to every factor) to "
        "1 (each latent responds to one factor).",
    )
    report.figure(
        _side_by_side(assays, lambda a, ax, name: plot_response_matrix(
            a.assay.response_matrix_, ax=ax, title=f"{name}: latent response matrix")),
        "response_matrices",
        "Row j: the latent coordinate intervened on; column i: the coordinate that responds "
        "(RMS change, normalised so that a perfect identity reads 1; both panels share one "
        "colour scale). A bright diagonal entry "
        "is a dimension the model uses; a dark one is collapsed. Off-diagonal entries show "
        "one dimension driving another through the decoder and encoder.",
    )
    report.figure(
        _side_by_side(assays, lambda a, ax, name: plot_conditioned_response_matrix(
            a.conditioned, list(sprites.factor_names), ax=ax,
            title=f"{name}: conditioned response (CDS {a.cds:.2f})")),
        "conditioned_matrices",
        "How much each latent coordinate (column) responds when the intervention changes only "
        "one true factor (row), on one colour scale for both models. A disentangled model has "
        "one bright cell per column; the CDS in the title summarises this.",
    )
    _report_maps(report, assays, settings)


@dataclass
class _AutoencoderAnalysis:
    assay: LatentResponse
    conditioned: np.ndarray
    cds: float
    score: float
    n_used: int


def _analyse_autoencoder(name, model_class, beta, sprites, settings, device, seed, progress):
    with progress.step(f"train the {name} on the sprites ({settings.autoencoder_epochs} epochs)"):
        torch.manual_seed(seed)
        model = model_class(image_size=settings.sprite_size, n_latent=N_LATENT, hidden=(128, 64))
        train_autoencoder(
            model, sprites.images, epochs=settings.autoencoder_epochs, beta=beta,
            random_state=seed, device=device,
        )
    with progress.step(f"measure the {name}'s latent responses"), warnings.catch_warnings():
        # the report shows collapsed coordinates (the VAE's prior switches some off) as dark
        # diagonal entries and says why: the assay's warning would only repeat it
        warnings.filterwarnings("ignore", message=r".*latent coordinates are collapsed")
        assay = LatentResponse(
            model.encode, model.decode, n_samples=settings.n_response_samples,
            normalize="std", device=device, random_state=seed,
        ).fit(sprites.images)
        conditioned = assay.conditioned_response_matrix(
            sprites.images, sprites.factors, n_traversals=settings.n_traversals
        )
        cds = assay.causal_disentanglement_score(
            sprites.images, sprites.factors, n_traversals=settings.n_traversals
        )
    return _AutoencoderAnalysis(
        assay=assay,
        conditioned=conditioned,
        cds=cds,
        score=assay.score(sprites.images),
        n_used=int((np.diag(assay.response_matrix_) > 0.2).sum()),
    )


def _side_by_side(assays: dict, draw):
    """One heatmap per model on a shared colour scale, so that the models compare."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(assays), figsize=(5.5 * len(assays), 4.6),
                                constrained_layout=True)
    images = []
    for ax, (name, analysis) in zip(axes, assays.items(), strict=True):
        draw(analysis, ax, name)
        images += ax.images
    top = max(image.get_array().max() for image in images)
    for image in images:
        image.set_clim(0.0, top)
    return figure


def _report_maps(report, assays: dict, settings: Settings) -> None:
    import matplotlib.pyplot as plt

    from ..plotting import plot_response_maps

    report.subsection("Response maps")
    figure, axes = plt.subplots(len(assays), 4, figsize=(13, 3.2 * len(assays)),
                                constrained_layout=True)
    for row, (name, analysis) in zip(axes, assays.items(), strict=True):
        assay = analysis.assay
        a, b = np.argsort(np.diag(assay.response_matrix_))[::-1][:2]
        response_map = assay.response_map(dims=(int(a), int(b)), n_grid=settings.map_grid)
        plot_response_maps(response_map, assay.latents_, axes=row)
        row[0].set_ylabel(f"{name}\nz{b}")
    report.figure(
        figure,
        "response_maps",
        "A 2-D slice of each latent space through the data's mean, along its two most used "
        "dimensions. From left: the density of the encoded sprites; the magnitude of the "
        "response field r(z) - z (small where the slice meets the learned manifold); its "
        "divergence (negative where the response contracts towards the manifold); and the "
        "mean curvature of its level sets. Where the data is dense, a well-trained model "
        "contracts.",
    )


# --------------------------------------------------------------------------- about


def _about_this_run(report: Report, progress: Progress, device) -> None:
    report.section("About this run")
    report.table(
        ["step", "seconds"],
        [[name, seconds] for name, seconds in progress.timings] + [["total", progress.elapsed]],
        caption=f"Wall time of each step on {device} ({platform.processor() or platform.machine()},"
        f" {torch.get_num_threads()} torch threads).",
        decimals=1,
    )
    report.paragraph(
        f"skarchetype {__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}. References: J. Wedenborg, T. Dorszewski, "
        "L. K. Hansen, K. Wickstrøm and M. Mørup, Explaining latent representations of neural "
        "networks with archetypal analysis, NLDL 2026 (PMLR 307). M. Mørup and L. K. Hansen, "
        "Archetypal analysis for machine learning and data mining, Neurocomputing 80, 2012. "
        "F. Leeb, S. Bauer, M. Besserve and B. Schölkopf, Exploring the latent space of "
        "autoencoders with interventional assays, NeurIPS 2022."
    )
