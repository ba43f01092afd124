"""ArchetypalAnalysis(distributed=True): processes of a torch.distributed group, each
with its own rows, fit what one process fits on all the rows.

Each scenario spawns its processes once (gloo on the CPU, or NCCL on GPUs) and runs
several fits in them; the tests below read the results. The reference is the ordinary
one-process fit of the concatenated rows with the same parameters.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import pickle
import time
from datetime import timedelta

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import float32_search

from skarchetype import ArchetypalAnalysis
from skarchetype._solvers import INITIALISATIONS, CentredRows
from skarchetype._solvers._distributed import DistributedRows, ShardError
from skarchetype.datasets import make_archetypal_data

N_ARCHETYPES = 3
INITS = ("furthest_sum", "aa++", "random", "array")
# rows of each rank, in rank order: uneven, and one rank holding a single row
SHARDS = {1: (61,), 2: (41, 20), 3: (20, 1, 40)}
# tight enough that both fits reach the optimum rather than stop at different points
# short of it, as the default tol=1e-6 leaves fits searched in float32 or of raw-scale
# data (see TOLERANCES)
PARAMS = dict(n_archetypes=N_ARCHETYPES, random_state=0, tol=1e-11, max_iter=5000)
DEFAULTS = dict(n_archetypes=N_ARCHETYPES, random_state=0)


def _data() -> np.ndarray:
    # planted archetypes (data rows) make the optimum unique, so fits can be compared by it
    return make_archetypal_data(61, 5, N_ARCHETYPES, plant=True, random_state=0)[0]


def _init(name, X):
    return X[[3, 30, 50]] + 0.01 if name == "array" else name


def _shard(X, rank, sizes):
    begin = sum(sizes[:rank])
    return X[begin: begin + sizes[rank]]


def _run(rank, world, backend, init_file, out_dir, job, timeout):
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=timeout))
    torch.set_num_threads(1)
    try:
        result = job(rank, world)
    except Exception as error:  # reported to the test rather than lost in a child
        result = {"error": f"{type(error).__name__}: {error}"}
    with open(os.path.join(out_dir, f"{rank}.pkl"), "wb") as file:
        pickle.dump(result, file)
    dist.destroy_process_group()


def spawn(job, world, tmp_path, backend="gloo", timeout=60):
    """Run ``job(rank, world)`` in ``world`` fresh processes; return their results."""
    mp.spawn(_run, args=(world, backend, str(tmp_path / "init"), str(tmp_path), job, timeout),
             nprocs=world)
    results = []
    for rank in range(world):
        with open(tmp_path / f"{rank}.pkl", "rb") as file:
            results.append(pickle.load(file))
    return results


def _fit_summary(model, X_rank):
    return dict(
        archetypes=model.archetypes_, explained_variance=model.explained_variance_,
        n_iter=model.n_iter_, loss_curve=model.loss_curve_, coefficients=model.coefficients_,
        weights=model.archetype_weights_.toarray(), transform=model.transform(X_rank),
    )


# raw-scale data: the features on scales 1 to 1000
RAW_SCALES = np.logspace(0, 3, 5)

# the fits of _fits_job: name -> (dtype, parameters, whether the search runs in float32,
# the features' scales)
VARIANTS = {
    "float64": (np.float64, PARAMS, False, 1.0),
    "float32": (np.float32, PARAMS, False, 1.0),
    "raw scale": (np.float64, {**PARAMS, "n_init": 1}, False, RAW_SCALES),  # one start: slow
    "default tol": (np.float64, DEFAULTS, False, 1.0),
    "float32 search": (np.float32, PARAMS, True, 1.0),
    "mixed search": (np.float64, PARAMS, True, 1.0),
}


def _fit_variant(variant, init, device="cpu", rank=None, world=None):
    """A fit of one variant of the data: of all rows, or of this rank's in a process group.
    The archetypes are returned in units of the largest feature scale."""
    dtype, params, float32_search_, scales = VARIANTS[variant]
    X = (_data() * scales).astype(dtype)
    X_fit = X if rank is None else _shard(X, rank, SHARDS[world])
    with float32_search() if float32_search_ else contextlib.nullcontext():
        model = ArchetypalAnalysis(init=_init(init, X), distributed=rank is not None,
                                   device=device, **params).fit(X_fit)
    summary = _fit_summary(model, X_fit)
    summary["archetypes"] = summary["archetypes"] / np.max(scales).astype(dtype)
    return summary


def _fits_job(rank, world, device="cpu"):
    """Distributed fits of every variant and init, and the initial rows alone."""
    results = {
        (variant, init): _fit_variant(variant, init, device, rank, world)
        for variant in VARIANTS for init in INITS
    }
    data = DistributedRows(_shard(_data(), rank, SHARDS[world]), torch.device(device),
                           torch.float64)
    for name, initialise in INITIALISATIONS.items():
        results["rows", name] = initialise(data, 4, np.random.RandomState(7))
    return results


@functools.cache
def _reference(variant, init):
    return _fit_variant(variant, init)


@pytest.fixture(scope="module", params=[2, 3])
def distributed_fits(request, tmp_path_factory):
    world = request.param
    results = spawn(_fits_job, world, tmp_path_factory.mktemp(f"fits{world}"))
    return world, results


# The issue's tolerances on the SSE (relative) and the archetypes: small data are fitted
# in float64 whatever their dtype. A float32 search (large data) stops once an iteration
# gains less than its noise floor (16 eps of the total sum of squares), and sums over
# shards round differently from sums over all rows, so two float32 fits of one optimum
# stop at different points of a slow final approach: on these data their explained
# variances were measured up to 1.1e-4 apart (SSEs 2 % apart, the SSE being 0.5 % of the
# total) and their archetypes up to 2.3e-2 (data of unit scale, random init, where one
# archetype moves slowly along a flat direction). A float32 search is therefore compared
# by the explained variance, with a margin over that; under precision="mixed" the float64
# finish brings float64 data's fits back to the issue's tolerances.
# Stopped by the default tol, float64 fits of these (standardised) data take the same
# path to rounding. Raw-scale data's do not: BLAS rounds each row's products differently
# in matrices of other widths, and the steps on S magnify rounding where the features'
# scales span orders of magnitude, so fits stopped short of the optimum end apart (SSEs
# up to 1.6e-4, archetypes up to 2e-3 apart, measured on 500 x 10 and 2000 x 20 sets
# with scales 1 to 1000; standardised sets of the same shapes: within the tolerances).
ISSUE_TOLERANCES = (1e-6, 1e-5)
TOLERANCES = {
    **dict.fromkeys(("float64", "float32", "raw scale", "mixed search", "default tol"),
                    ISSUE_TOLERANCES),
    "float32 search": (5e-4, 5e-2),
}


def _assert_same_fit(fit, expected, variant):
    rtol, atol = TOLERANCES[variant]
    if variant == "float32 search":
        assert fit["explained_variance"] == pytest.approx(expected["explained_variance"],
                                                          abs=rtol)
    else:
        assert 1 - fit["explained_variance"] == pytest.approx(
            1 - expected["explained_variance"], rel=rtol)
    np.testing.assert_allclose(fit["archetypes"], expected["archetypes"], atol=atol)


@pytest.mark.parametrize("variant", sorted(TOLERANCES))
@pytest.mark.parametrize("init", INITS)
def test_shards_fit_what_one_process_fits_on_all_rows(distributed_fits, variant, init):
    world, results = distributed_fits
    expected = _reference(variant, init)
    for result in results:
        _assert_same_fit(result[variant, init], expected, variant)
        assert result[variant, init]["archetypes"].dtype == VARIANTS[variant][0]


def test_every_rank_ends_with_the_same_model(distributed_fits):
    _, results = distributed_fits
    for key, fit in results[0].items():
        if key[0] == "rows":
            continue
        for other in results[1:]:
            np.testing.assert_array_equal(other[key]["archetypes"], fit["archetypes"])
            np.testing.assert_array_equal(other[key]["loss_curve"], fit["loss_curve"])
            assert other[key]["n_iter"] == fit["n_iter"]
            assert other[key]["explained_variance"] == fit["explained_variance"]


def test_coefficients_are_the_ranks_own_rows_and_weights_index_rows_globally(distributed_fits):
    world, results = distributed_fits
    X = _data()
    for rank, result in enumerate(results):
        fit = result["float64", "furthest_sum"]
        assert fit["coefficients"].shape == (SHARDS[world][rank], N_ARCHETYPES)
        np.testing.assert_allclose(fit["transform"], fit["coefficients"], atol=1e-6)
        # the archetypes are the weights' mixtures of the global rows, in rank order
        assert fit["weights"].shape == (N_ARCHETYPES, len(X))
        np.testing.assert_allclose(fit["weights"] @ X, fit["archetypes"], atol=1e-10)


def test_transform_is_local_and_matches_one_process(distributed_fits):
    world, results = distributed_fits
    X = _data()
    reference = ArchetypalAnalysis(**PARAMS).fit(X)
    for rank, result in enumerate(results):
        expected = reference.transform(_shard(X, rank, SHARDS[world]))
        np.testing.assert_allclose(result["float64", "furthest_sum"]["transform"], expected,
                                   atol=1e-4)


@pytest.mark.parametrize("name", sorted(INITIALISATIONS))
def test_initialisations_pick_the_rows_one_process_picks(distributed_fits, name):
    _, results = distributed_fits
    data = CentredRows(_data(), torch.device("cpu"), torch.float64)
    expected = INITIALISATIONS[name](data, 4, np.random.RandomState(7))
    for result in results:
        np.testing.assert_array_equal(result["rows", name], expected)


def _faults_job(rank, world):
    """Fits where one rank's input or parameters are wrong, then a good one."""
    X = _shard(_data(), rank, SHARDS[world])
    bad_inputs = {
        "nan": X.copy() if rank == 0 else np.where(np.arange(X.size).reshape(X.shape) == 4,
                                                   np.nan, X),
        "n_features": X if rank == 0 else X[:, :4],
        "empty": X if rank == 0 else X[:0],
    }
    results = {}
    for name, X_rank in bad_inputs.items():
        try:
            ArchetypalAnalysis(distributed=True, **PARAMS).fit(X_rank)
        except ValueError as error:
            results[name] = f"{type(error).__name__}: {error}"
    try:
        ArchetypalAnalysis(distributed=True, n_archetypes=3 + rank, random_state=0).fit(X)
    except ShardError as error:
        results["parameters"] = str(error)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model = ArchetypalAnalysis(distributed=True, verbose=1, **PARAMS).fit(X)
    results["fit"], results["printed"] = model.explained_variance_, printed.getvalue()
    return results


@pytest.fixture(scope="module")
def fault_results(tmp_path_factory):
    return spawn(_faults_job, 2, tmp_path_factory.mktemp("faults"))


@pytest.mark.parametrize(("case", "words"), [
    ("nan", "NaN"), ("n_features", "n_features"), ("empty", "minimum of 1"),
])
def test_bad_input_on_one_rank_raises_on_every_rank(fault_results, case, words):
    for rank, result in enumerate(fault_results):
        assert case in result, result
        assert words in result[case]
        if rank == 0:  # the rank with good input names the failing one
            assert "rank 1" in result[case]


def test_ranks_with_different_parameters_are_stopped_before_fitting(fault_results):
    for result in fault_results:
        assert "n_archetypes" in result["parameters"]
        assert "rank 1: {'n_archetypes': 4}" in result["parameters"]


def test_a_failed_check_leaves_the_group_usable(fault_results):
    assert fault_results[0]["fit"] == fault_results[1]["fit"] > 0.9


def test_only_rank_0_reports_progress(fault_results):
    assert "[ArchetypalAnalysis] start with seed" in fault_results[0]["printed"]
    assert fault_results[1]["printed"] == ""


def _scaled_fits_job(rank, world):
    """Distributed fits of the data at a decimal and at a power-of-two scale."""
    results = {}
    for scale in (1e150, 2.0**-700):
        X_rank = _shard(_data() * scale, rank, SHARDS[world])
        model = ArchetypalAnalysis(distributed=True, **PARAMS).fit(X_rank)
        results[scale] = _fit_summary(model, X_rank)
    return results


def test_shards_at_any_scale_fit_what_one_process_fits_on_all_rows(tmp_path):
    # the ranks' rows differ in size, yet every rank must rescale by the same power of two
    results = spawn(_scaled_fits_job, 2, tmp_path)
    expected = _reference("float64", "furthest_sum")
    for result in results:
        assert "error" not in result, result
        for scale, fit in result.items():
            _assert_same_fit({**fit, "archetypes": fit["archetypes"] / scale}, expected,
                             "float64")
            np.testing.assert_array_equal(fit["archetypes"], results[0][scale]["archetypes"])


def _silent_rank_job(rank, world):
    if rank == 1:  # never joins the fit
        time.sleep(8)
        return {}
    start = time.monotonic()
    try:
        ArchetypalAnalysis(distributed=True, **PARAMS).fit(_data()[:30])
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "waited": time.monotonic() - start}
    return {"waited": time.monotonic() - start}


def test_a_silent_rank_fails_with_the_process_groups_timeout(tmp_path):
    result = spawn(_silent_rank_job, 2, tmp_path, timeout=2)[0]
    assert "error" in result
    assert result["waited"] < 8  # the fit gave up before the silent rank came back


def test_distributed_without_a_process_group_says_how_to_start_one():
    with pytest.raises(ValueError, match="init_process_group"):
        ArchetypalAnalysis(distributed=True).fit(_data())


def _gpu_job(rank, world):
    torch.cuda.set_device(rank)
    return _fits_job(rank, world, device=f"cuda:{rank}")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_nccl_ranks_on_gpus_fit_what_one_process_fits(tmp_path):
    results = spawn(_gpu_job, 2, tmp_path, backend="nccl")
    expected = _reference("float64", "furthest_sum")
    for result in results:
        assert "error" not in result, result
        np.testing.assert_allclose(result["float64", "furthest_sum"]["archetypes"],
                                   expected["archetypes"], atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_one_rank_on_a_gpu_fits_what_the_cpu_fits(tmp_path):
    [result] = spawn(_gpu_job, 1, tmp_path, backend="nccl")
    assert "error" not in result, result
    expected = _reference("float64", "furthest_sum")
    np.testing.assert_allclose(result["float64", "furthest_sum"]["archetypes"],
                               expected["archetypes"], atol=1e-5)


def test_archetype_weights_of_one_process_are_unchanged_by_the_hooks():
    """distributed=False: the weights still index the rows of X (one process, offset 0)."""
    X = _data()
    model = ArchetypalAnalysis(**PARAMS).fit(X)
    assert sp.issparse(model.archetype_weights_)
    np.testing.assert_allclose(model.archetype_weights_ @ X, model.archetypes_, atol=1e-10)
