#!/usr/bin/env bash
# Shrink a random forest to a small sub-ensemble with several pruning methods.
#   bash examples/cli_ensemble.sh           # 100 trees on breast_cancer, keep 20 %
#   bash examples/cli_ensemble.sh --quick   # 20 trees, three methods
set -euo pipefail
if [[ "${1:-}" == "--quick" ]]; then
  args=(--n-estimators 20 --methods reduce_error,orientation,random)
else
  args=(--n-estimators 100)
fi
# --size: a count (10), a fraction (0.2) or auto; --oob prunes on out-of-bag predictions
prunekit ensemble --model rf --data breast_cancer --size 0.2 --oob "${args[@]}" \
  --out prunekit-ensemble --quiet
echo "open prunekit-ensemble/report.html (toggle methods in the legend, stars mark the chosen size)"
