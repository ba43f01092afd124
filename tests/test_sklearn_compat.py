"""Every scikit-learn estimator check, none skipped, for every estimator of the package."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skarchetype import ArchetypalAnalysis


@parametrize_with_checks([ArchetypalAnalysis(n_archetypes=3, random_state=0)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
