"""PrunedTreeClassifier / PrunedTreeRegressor: scikit-learn estimator checks, Pipeline, search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from prunekit.errors import UnsupportedModelError
from prunekit.trees import PrunedTreeClassifier, PrunedTreeRegressor, TreePruneReport


@parametrize_with_checks(
    [
        PrunedTreeClassifier(random_state=0),
        PrunedTreeClassifier(method="reduced_error", random_state=0),
        PrunedTreeRegressor(random_state=0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_pipeline_and_grid_search():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), PrunedTreeClassifier(random_state=0))
    search = GridSearchCV(
        pipe,
        {"prunedtreeclassifier__method": ["c45", "pessimistic", "mdl"]},
        cv=3,
    ).fit(X, y)
    best = search.best_estimator_[-1]
    assert isinstance(best.estimator_, DecisionTreeClassifier)
    assert isinstance(best.prune_report_, TreePruneReport)
    assert search.best_score_ > 0.85
    assert best.get_n_leaves() == best.estimator_.get_n_leaves()
    assert best.predict_proba(X[:5]).shape == (5, 2)


def test_classifier_methods_and_params():
    X, y = load_breast_cancer(return_X_y=True)
    full = DecisionTreeClassifier(random_state=0).fit(X, y)
    for method, params in [("c45", {"confidence": 0.1}), ("reduced_error", None),
                           ("cost_complexity", {"one_se": True}), ("pre_pruning", {"cv": 3})]:
        est = PrunedTreeClassifier(method=method, method_params=params, random_state=0).fit(X, y)
        assert est.get_n_leaves() < full.get_n_leaves(), method
        assert est.prune_report_.method == method
        np.testing.assert_array_equal(est.apply(X), est.estimator_.apply(X))
        assert est.feature_importances_.shape == (30,)


def test_regressor_and_unsupported_method():
    X, y = load_diabetes(return_X_y=True)
    est = PrunedTreeRegressor(method="reduced_error", random_state=0).fit(X, y)
    assert isinstance(est.estimator_, DecisionTreeRegressor)
    assert est.get_n_leaves() < DecisionTreeRegressor(random_state=0).fit(X, y).get_n_leaves()
    with pytest.raises(UnsupportedModelError, match="classification only"):
        PrunedTreeRegressor(method="c45").fit(X, y)
    with pytest.raises(UnsupportedModelError, match="DecisionTreeRegressor"):
        PrunedTreeRegressor(estimator=DecisionTreeClassifier()).fit(X, y)


# ----------------------------------------------- method options as keywords; sklearn.tree exporters
def test_method_options_as_plain_keywords_equal_method_params():
    from sklearn.base import clone

    X, y = load_breast_cancer(return_X_y=True)
    kw = PrunedTreeClassifier(method="min_error", m=0.5, random_state=0).fit(X, y)
    old = PrunedTreeClassifier(method="min_error", method_params={"m": 0.5},
                               random_state=0).fit(X, y)
    default = PrunedTreeClassifier(method="min_error", random_state=0).fit(X, y)  # m=2
    assert kw.get_n_leaves() == old.get_n_leaves() > default.get_n_leaves()
    assert kw.get_params()["m"] == 0.5
    assert clone(kw).set_params(m=20.0).m == 20.0
    search = GridSearchCV(PrunedTreeClassifier(method="c45", random_state=0),
                          {"confidence": [0.01, 0.25]}, cv=3).fit(X, y)
    assert search.best_params_["confidence"] in (0.01, 0.25)
    assert search.best_estimator_.prune_report_.params["confidence"] in (0.01, 0.25)


def test_keyword_and_method_params_conflict_or_wrong_method_is_an_error():
    from prunekit.errors import InvalidParameterError

    X, y = load_breast_cancer(return_X_y=True)
    with pytest.raises(InvalidParameterError, match="confidence"):
        PrunedTreeClassifier(method="c45", confidence=0.1,
                             method_params={"confidence": 0.2}).fit(X, y)
    with pytest.raises(InvalidParameterError, match="confidence"):
        PrunedTreeClassifier(method="mdl", confidence=0.1).fit(X, y)
    reg = PrunedTreeRegressor(method="cost_complexity", one_se=True, random_state=0)
    assert "confidence" not in reg.get_params()
    Xr, yr = load_diabetes(return_X_y=True)
    assert reg.fit(Xr, yr).prune_report_.params.get("one_se") is True


def test_sklearn_tree_exporters_draw_the_result():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.tree import export_graphviz, export_text, plot_tree

    data = load_breast_cancer()
    X = pd.DataFrame(data.data, columns=data.feature_names)
    est = PrunedTreeClassifier(method="c45", random_state=0).fit(X, data.target)
    names = list(est.feature_names_in_)
    assert names == list(data.feature_names)
    assert est.tree_ is est.estimator_.tree_ and est.criterion == "gini" and est.n_outputs_ == 1
    # export_graphviz takes the meta-estimator itself
    dot = export_graphviz(est, feature_names=names, class_names=["malignant", "benign"])
    assert dot == export_graphviz(est.estimator_, feature_names=names,
                                  class_names=["malignant", "benign"])
    # the documented one-liners for the exporters that accept only sklearn's tree classes
    text = export_text(est.estimator_, feature_names=names, max_depth=100)
    assert text.count("class: ") == est.get_n_leaves() and names[est.tree_.feature[0]] in text
    fig, ax = plt.subplots()
    try:
        assert len(plot_tree(est.estimator_, feature_names=names, ax=ax)) >= est.tree_.node_count
    finally:
        plt.close(fig)
    Xr, yr = load_diabetes(return_X_y=True)
    reg = PrunedTreeRegressor(method="reduced_error", random_state=0).fit(Xr, yr)
    assert export_graphviz(reg) == export_graphviz(reg.estimator_)
    assert export_text(reg.estimator_, max_depth=100).count("value: ") == reg.get_n_leaves()


def test_unfitted_estimator_is_rejected_by_exporters():
    from sklearn.exceptions import NotFittedError
    from sklearn.tree import export_graphviz

    with pytest.raises(NotFittedError):
        export_graphviz(PrunedTreeClassifier())
    with pytest.raises(NotFittedError):
        PrunedTreeClassifier().criterion  # noqa: B018
