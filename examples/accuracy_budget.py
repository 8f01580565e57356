"""The smallest models within a 1-point accuracy budget: a forest, then a CNN, with a report.

    python examples/accuracy_budget.py [--quick]

Writes budget-report.html (Pareto fronts of both searches) in the current directory.
"""

from __future__ import annotations

import sys

import torch
from sklearn.ensemble import RandomForestClassifier

from prunekit import budget
from prunekit.data import load_dataset
from prunekit.nn import DigitsCNN, train_classifier
from prunekit.nn.sensitivity import Accuracy, group_sensitivity
from prunekit.report import Report

quick = "--quick" in sys.argv
ds = load_dataset("digits", seed=0)
report = Report("How far can I prune?")

forest = RandomForestClassifier(n_estimators=40 if quick else 200, random_state=0)
forest.fit(ds.X_train, ds.y_train)
res = budget.search_ensemble(forest, max_drop=0.01, X_val=ds.X_val, y_val=ds.y_val,
                             X_eval=ds.X_test, y_eval=ds.y_test)
print(res.to_markdown(), "\n")
res.add_to_report(report, "Random forest: members vs accuracy")

train, val, test = ds.loaders(64, images=True)
torch.manual_seed(0)
cnn = DigitsCNN()
train_classifier(cnn, train, epochs=3 if quick else 10)
x = torch.zeros(1, 1, 8, 8)
sens = group_sensitivity(cnn, x, Accuracy(val))  # each channel group alone, cached
res = budget.search_structured(cnn, x, Accuracy(test), max_drop=0.01,
                               allocation="sensitivity", sensitivity=sens)
print(res.to_markdown())
res.add_to_report(report, "DigitsCNN: MACs vs accuracy")
report.add_figure(sens.plot(), "Sensitivity of each channel group")
print("wrote", report.write_html("budget-report.html"))
