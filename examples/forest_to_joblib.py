"""Shrink a RandomForest to a fifth of its trees, save it with joblib, load it back.

    python examples/forest_to_joblib.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import joblib
from sklearn.ensemble import RandomForestClassifier

from prunekit.data import load_dataset
from prunekit.ensembles import prune_ensemble

quick = "--quick" in sys.argv
ds = load_dataset("digits", seed=0)  # train / validation / test splits, numpy arrays
forest = RandomForestClassifier(n_estimators=40 if quick else 200, random_state=0, n_jobs=-1)
forest.fit(ds.X_train, ds.y_train)

# Keep the 20 % of trees that work best together, chosen on the validation split.
small = prune_ensemble(forest, "orientation", size=0.2, X_val=ds.X_val, y_val=ds.y_val)
print(small.prune_report_.summary())

with tempfile.TemporaryDirectory() as tmp:
    for name, model in (("full", forest), ("pruned", small)):
        path = Path(tmp) / f"{name}.joblib"
        joblib.dump(model, path)
        loaded = joblib.load(path)  # an ordinary RandomForestClassifier
        acc = (loaded.predict(ds.X_test) == ds.y_test).mean()
        print(f"{name:>6}: {loaded.n_estimators:3d} trees, {path.stat().st_size / 1e6:6.2f} MB, "
              f"test accuracy {acc:.3f}")
