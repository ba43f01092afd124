"""skarchetype.inspection: stability, choice of K, independence, interpretation, explanation."""

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skarchetype import ArchetypalAnalysis
from skarchetype.datasets import make_archetypal_data
from skarchetype.inspection import (
    archetype_purity,
    class_composition,
    dataset_independence,
    elbow,
    explain_sample,
    generating_samples,
    match_archetypes,
    nearest_samples,
    seed_stability,
    select_n_archetypes,
    selection_from_search,
    soft_nmi,
)


def one_hot(labels, n_classes):
    return np.eye(n_classes)[labels]


@pytest.fixture
def planted():
    X, archetypes, _ = make_archetypal_data(
        150, 6, 3, concentration=0.2, noise=0.01, plant=True, random_state=0
    )
    return X, archetypes


# soft NMI


def test_soft_nmi_of_identical_coefficients_is_one(rng):
    coefficients = rng.dirichlet(np.full(4, 0.3), size=200)
    assert soft_nmi(coefficients, coefficients) == pytest.approx(1.0)


def test_soft_nmi_ignores_the_order_of_archetypes(rng):
    coefficients = rng.dirichlet(np.full(4, 0.3), size=200)
    assert soft_nmi(coefficients, coefficients[:, [2, 0, 3, 1]]) == pytest.approx(1.0)


def test_soft_nmi_of_independent_assignments_is_near_zero(rng):
    first = one_hot(rng.integers(0, 4, size=5000), 4)
    second = one_hot(rng.integers(0, 4, size=5000), 4)
    assert abs(soft_nmi(first, second)) < 0.01


def test_soft_nmi_of_hard_assignments_is_the_arithmetic_nmi(rng):
    first, second = rng.integers(0, 3, size=300), rng.integers(0, 5, size=300)
    second[:200] = first[:200]
    expected = normalized_mutual_info_score(first, second, average_method="arithmetic")
    assert soft_nmi(one_hot(first, 3), one_hot(second, 5)) == pytest.approx(expected)


def test_soft_nmi_handles_unused_archetypes_and_different_k(rng):
    labels = rng.integers(0, 3, size=100)
    with_unused = one_hot(labels, 4)
    assert soft_nmi(with_unused, one_hot(labels, 3)) == pytest.approx(1.0)


def test_soft_nmi_is_nan_without_information():
    single = np.ones((10, 1))
    assert np.isnan(soft_nmi(single, single))


def test_soft_nmi_refuses_different_samples(rng):
    with pytest.raises(ValueError, match="same samples, got 5 and 6 rows"):
        soft_nmi(np.ones((5, 2)), np.ones((6, 2)))


def test_soft_nmi_refuses_negative_coefficients():
    with pytest.raises(ValueError, match="non-negative"):
        soft_nmi(-np.ones((5, 2)), np.ones((5, 2)))


# matching


def test_matching_recovers_a_permutation(rng):
    archetypes = rng.normal(size=(5, 10))
    permutation = np.array([3, 0, 4, 1, 2])
    noisy = archetypes[permutation] + 0.01 * rng.normal(size=(5, 10))
    matching = match_archetypes(archetypes, noisy)
    np.testing.assert_array_equal(permutation[matching.indices_b], matching.indices_a)
    assert matching.mean_cosine > 0.99


def test_matching_pairs_the_smaller_set(rng):
    matching = match_archetypes(rng.normal(size=(3, 4)), rng.normal(size=(5, 4)))
    assert len(matching.indices_a) == len(matching.cosine) == 3


def test_matching_refuses_different_feature_spaces(rng):
    with pytest.raises(ValueError, match="same n_features"):
        match_archetypes(rng.normal(size=(3, 4)), rng.normal(size=(3, 5)))


# elbow and K selection


def test_elbow_finds_the_bend_of_a_saturating_curve():
    assert elbow([1, 2, 3, 4, 5, 6], [0.0, 0.5, 0.9, 0.95, 0.97, 0.98]) == 3


def test_elbow_of_a_flat_curve_is_the_first_candidate():
    assert elbow([2, 3, 4], [0.5, 0.5, 0.5]) == 2


def test_selection_from_search_keeps_the_best_score_per_k():
    results = {
        "param_aa__n_archetypes": np.ma.array([2, 2, 4, 4, 6, 6]),
        "mean_test_score": np.array([0.1, 0.3, 0.7, 0.6, 0.8, 0.75]),
        "std_test_score": np.array([0.0, 0.01, 0.02, 0.03, 0.04, 0.05]),
    }
    selection = selection_from_search(SimpleNamespace(cv_results_=results))
    np.testing.assert_array_equal(selection.n_archetypes, [2, 4, 6])
    np.testing.assert_allclose(selection.mean_score, [0.3, 0.7, 0.8])
    np.testing.assert_allclose(selection.std_score, [0.01, 0.02, 0.04])
    assert selection.best_n_archetypes == 4


def test_selection_from_search_names_the_available_parameters():
    results = {"param_n_archetypes": np.array([2]), "mean_test_score": np.array([0.1])}
    with pytest.raises(ValueError, match=r"\['n_archetypes'\]"):
        selection_from_search(SimpleNamespace(cv_results_=results))


def test_selection_sweep_reports_rising_ev_and_picks_the_planted_k(planted):
    X, _ = planted
    selection = select_n_archetypes(
        X, [2, 3, 4, 5], n_seeds=2, random_state=0, n_jobs=2,
        estimator=ArchetypalAnalysis(max_iter=200),
    )
    assert selection.explained_variance.shape == (4, 2)
    assert np.all(np.diff(selection.mean_explained_variance) > -1e-3)
    assert selection.best_n_archetypes == 3
    assert selection.stability[1] > 0.9


def test_selection_from_a_grid_search_over_a_pipeline(planted):
    from sklearn.model_selection import GridSearchCV

    X, _ = planted
    pipe = make_pipeline(StandardScaler(), ArchetypalAnalysis(random_state=0, max_iter=100))
    search = GridSearchCV(pipe, {"archetypalanalysis__n_archetypes": [2, 3, 4, 5]}, cv=2)
    selection = selection_from_search(search.fit(X), "archetypalanalysis__n_archetypes")
    assert selection.best_n_archetypes == 3


# stability across seeds and data sets


def test_seeds_agree_on_planted_archetypes(planted):
    X, _ = planted
    models = [ArchetypalAnalysis(3, random_state=seed, max_iter=200).fit(X) for seed in range(3)]
    stability = seed_stability(models)
    assert stability.nmi.shape == stability.cosine.shape == (3,)
    assert stability.mean_nmi > 0.9 and stability.mean_cosine > 0.99


def test_archetypes_of_one_half_describe_the_other(planted):
    X, _ = planted
    result = dataset_independence(X[::2], X[1::2], ArchetypalAnalysis(3, random_state=0))
    assert result.explained_variance_ratio == pytest.approx(1.0, abs=0.02)
    assert result.nmi > 0.9
    assert result.matching.mean_cosine > 0.99


# interpretation


def test_generating_samples_are_the_largest_weights():
    weights = np.array([[0.0, 0.7, 0.0, 0.3], [0.5, 0.0, 0.5, 0.0]])
    indices, values = generating_samples(weights, n_samples=2)
    np.testing.assert_array_equal(indices, [[1, 3], [0, 2]])
    np.testing.assert_allclose(values, [[0.7, 0.3], [0.5, 0.5]])


def test_nearest_samples_are_the_largest_coefficients():
    coefficients = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0], [0.5, 0.5]])
    indices, values = nearest_samples(coefficients, n_samples=2)
    np.testing.assert_array_equal(indices, [[2, 0], [1, 3]])
    np.testing.assert_allclose(values, [[1.0, 0.9], [0.8, 0.5]])


def test_nearest_samples_refuses_too_many():
    with pytest.raises(ValueError, match="n_samples must be between 1 and 2"):
        nearest_samples(np.eye(2), n_samples=3)


def test_class_composition_averages_coefficients_per_class():
    coefficients = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    composition, classes = class_composition(coefficients, ["a", "a", "b"])
    np.testing.assert_array_equal(classes, ["a", "b"])
    np.testing.assert_allclose(composition, [[0.75, 0.0], [0.25, 1.0]])


def test_purity_is_one_for_a_single_class_and_zero_for_uniform_classes():
    labels = np.array([0, 0, 1, 1])
    coefficients = np.array([[0.9, 0.6], [0.8, 0.1], [0.1, 0.7], [0.0, 0.0]])
    np.testing.assert_allclose(archetype_purity(coefficients, labels, n_samples=2), [1.0, 0.0])


# explanation


def test_explanation_of_a_planted_archetype_is_that_archetype(planted):
    X, _ = planted
    model = ArchetypalAnalysis(3, random_state=0).fit(X)
    matching = match_archetypes(X[:1], model.archetypes_)
    explanation = explain_sample(model, X[:1], n_top=2, n_exemplars=4)
    assert explanation.top_archetypes[0] == matching.indices_b[0]
    assert explanation.top_coefficients[0] > 0.95
    assert explanation.exemplars.shape == (2, 4)
    assert explanation.relative_residual < 0.05


def test_explanation_runs_the_earlier_steps_of_a_pipeline(planted):
    X, _ = planted
    pipe = make_pipeline(StandardScaler(), ArchetypalAnalysis(3, random_state=0)).fit(X)
    explanation = explain_sample(pipe, X[5:6])
    expected = pipe[-1].transform(pipe[0].transform(X[5:6]))[0]
    np.testing.assert_allclose(explanation.coefficients, expected)


def test_explanation_needs_exactly_one_sample(planted):
    X, _ = planted
    with pytest.raises(ValueError, match="exactly one input"):
        explain_sample(SimpleNamespace(), X[:2])


def test_generating_samples_read_the_estimators_sparse_weights():
    X = make_archetypal_data(200, 4, 3, concentration=0.2, plant=True, random_state=0)[0]
    aa = ArchetypalAnalysis(3, random_state=0).fit(X)
    indices, weights = generating_samples(aa.archetype_weights_, n_samples=1)
    dense = aa.archetype_weights_.toarray()
    np.testing.assert_array_equal(indices[:, 0], dense.argmax(axis=1))
    np.testing.assert_allclose(weights[:, 0], dense.max(axis=1))


# --------------------------------------------------------------------------- hostile input


@pytest.fixture(scope="module")
def fitted():
    X, _, _ = make_archetypal_data(40, 3, 3, noise=0.01, random_state=1)
    return X, ArchetypalAnalysis(3, random_state=0).fit(X)


def test_explaining_a_tensor_that_requires_grad_explains_its_value(fitted):
    torch = pytest.importorskip("torch")
    X, model = fitted
    explanation = explain_sample(model, torch.tensor(X[:1], requires_grad=True))
    expected = explain_sample(model, X[:1])
    np.testing.assert_array_equal(explanation.coefficients, expected.coefficients)
    assert explanation.residual == expected.residual


@pytest.mark.parametrize(
    "estimator", [ArchetypalAnalysis(3), make_pipeline(StandardScaler(), ArchetypalAnalysis(3))],
    ids=["estimator", "pipeline"],
)
def test_explaining_with_an_unfitted_estimator_raises_not_fitted(fitted, estimator):
    with pytest.raises(NotFittedError):
        explain_sample(estimator, fitted[0][:1])


def test_seed_stability_of_unfitted_models_raises_not_fitted(fitted):
    with pytest.raises(NotFittedError):
        seed_stability([fitted[1], ArchetypalAnalysis(3)])


def test_selection_from_an_unfitted_search_raises_not_fitted():
    search = GridSearchCV(ArchetypalAnalysis(), {"n_archetypes": [2, 3]})
    with pytest.raises(NotFittedError):
        selection_from_search(search, "n_archetypes")


@pytest.mark.parametrize(("parameter", "value"), [("n_top", 1.5), ("n_exemplars", 0)])
def test_explanation_counts_must_be_positive_integers(fitted, parameter, value):
    with pytest.raises(ValueError, match=f"'{parameter}' parameter"):
        explain_sample(fitted[1], fitted[0][:1], **{parameter: value})


def test_more_exemplars_than_fitted_samples_names_n_exemplars(fitted):
    with pytest.raises(ValueError, match="n_exemplars must be between 1 and 40"):
        explain_sample(fitted[1], fitted[0][:1], n_exemplars=41)


@pytest.mark.parametrize("sample", [np.zeros(3), 0.0], ids=["1-D", "scalar"])
def test_explanation_of_a_sample_without_its_sample_axis(fitted, sample):
    with pytest.raises(ValueError, match="exactly one input"):
        explain_sample(fitted[1], sample)


@pytest.mark.parametrize("n_labels", [4, 6], ids=["shorter", "longer"])
def test_purity_refuses_labels_of_the_wrong_length(n_labels):
    coefficients = one_hot([0, 1, 2, 0, 1], 3)
    with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
        archetype_purity(coefficients, np.arange(n_labels) % 2, n_samples=2)


def test_purity_refuses_a_fractional_number_of_samples():
    with pytest.raises(ValueError, match="'n_samples' parameter"):
        archetype_purity(one_hot([0, 1, 2, 0], 3), [0, 1, 0, 1], n_samples=1.5)


def test_elbow_does_not_depend_on_the_order_of_the_candidates():
    ks = np.array([2, 3, 4, 5, 6, 7])
    scores = np.array([0.3, 0.7, 0.8, 0.85, 0.88, 0.9])
    order = np.array([4, 0, 5, 2, 1, 3])
    assert elbow(ks[order], scores[order]) == elbow(ks, scores) == 3


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_elbow_refuses_non_finite_scores(bad):
    with pytest.raises(ValueError, match="scores must be finite"):
        elbow([2, 3, 4, 5], [0.3, bad, 0.8, 0.85])


@pytest.mark.parametrize(
    ("ks", "needle"),
    [([2, 3.5, 4], "integers"), ([2, 3, 3], "distinct")],
    ids=["float", "repeated"],
)
def test_elbow_refuses_ks_that_are_not_distinct_integers(ks, needle):
    with pytest.raises(ValueError, match=needle):
        elbow(ks, [0.3, 0.7, 0.8])


def test_selection_from_search_ignores_failed_fits():
    cv_results = {
        "param_n_archetypes": np.array([2, 3, 4, 5, 6, 3]),
        "mean_test_score": np.array([0.3, np.nan, 0.8, 0.85, 0.88, 0.7]),
        "std_test_score": np.zeros(6),
    }
    selection = selection_from_search(SimpleNamespace(cv_results_=cv_results), "n_archetypes")
    np.testing.assert_array_equal(selection.mean_score, [0.3, 0.7, 0.8, 0.85, 0.88])
    assert selection.best_n_archetypes == 3


@pytest.mark.parametrize("ks", [[2, 2.5], [2.0, 3.0], [True, 2], [0, 2]], ids=str)
def test_select_n_archetypes_refuses_ks_that_are_not_positive_integers(fitted, ks):
    with pytest.raises(ValueError, match="n_archetypes must hold integers"):
        select_n_archetypes(fitted[0], ks, n_seeds=1)


def test_select_n_archetypes_refuses_a_huge_range_before_any_fit(fitted):
    with pytest.raises(ValueError, match=r"number of samples \(40\), got 41"):
        select_n_archetypes(fitted[0], range(2, 10**15), n_seeds=1)


@pytest.mark.parametrize("ks", ["2:5", 3, []], ids=["text", "int", "empty"])
def test_select_n_archetypes_needs_an_iterable_of_ks(fitted, ks):
    with pytest.raises(ValueError, match="n_archetypes"):
        select_n_archetypes(fitted[0], ks, n_seeds=1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_soft_nmi_refuses_non_finite_coefficients(bad):
    coefficients = one_hot([0, 1, 1, 0], 2)
    broken = coefficients.copy()
    broken[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        soft_nmi(broken, coefficients)


@pytest.mark.parametrize(
    "function",
    [
        lambda M: soft_nmi(M, M),
        lambda M: match_archetypes(M, M),
        lambda M: nearest_samples(M, 1),
        lambda M: generating_samples(M, 1),
        lambda M: class_composition(M, np.zeros(len(M))),
    ],
    ids=["soft_nmi", "match_archetypes", "nearest_samples", "generating_samples",
         "class_composition"],
)
@pytest.mark.parametrize(
    "matrix", [np.zeros((0, 3)), np.full((3, 3), np.nan)], ids=["empty", "nan"]
)
def test_matrix_functions_refuse_empty_or_non_finite_input(function, matrix):
    with pytest.raises(ValueError, match="empty|NaN"):
        function(matrix)


def test_dataset_independence_refuses_different_features_before_fitting():
    with pytest.raises(ValueError, match="X_a and X_b must share their features"):
        dataset_independence(np.zeros((5, 3)), np.zeros((5, 2)))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([[0.000999, 0.999001]], [[0.33355548, 0.33322226, 0.33322226]]),
        ([[0.2, 0.8]] * 4, [[0.5, 0.25, 0.25]] * 4),
    ],
    ids=["one sample", "identical rows"],
)
def test_soft_nmi_without_information_is_nan_not_rounding_noise(a, b):
    """One sample, or samples all alike, carry no information; rounding once gave -3.6."""
    assert np.isnan(soft_nmi(np.array(a), np.array(b)))


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_explanations_and_matchings_hold_at_any_scale(planted, scale):
    # residual norms and cosines are scale-free; their squares at 1e200 overflow
    X = planted[0] * scale
    model = ArchetypalAnalysis(4, random_state=0).fit(X)
    explanation = explain_sample(model, X[:1])
    coefficients = model.transform(X[:1])[0]
    residual = np.linalg.norm(X[0] / scale - coefficients @ (model.archetypes_ / scale))
    assert explanation.residual / scale == pytest.approx(residual, rel=1e-9)
    assert explanation.relative_residual == pytest.approx(
        residual / np.linalg.norm(X[0] / scale), rel=1e-9)
    matching = match_archetypes(model.archetypes_, model.archetypes_[::-1] * 3)
    np.testing.assert_allclose(matching.cosine, 1.0, rtol=1e-9)
    np.testing.assert_array_equal(matching.indices_b, np.arange(4)[::-1])
