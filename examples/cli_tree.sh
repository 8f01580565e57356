#!/usr/bin/env bash
# Prune a decision tree with every method from the command line, then read the report.
#   bash examples/cli_tree.sh           # breast_cancer, all methods
#   bash examples/cli_tree.sh --quick   # iris, three methods (a few seconds)
set -euo pipefail
if [[ "${1:-}" == "--quick" ]]; then
  args=(--data iris --methods reduced_error,cost_complexity,c45)
else
  args=(--data breast_cancer)
fi
# prints an aligned table (leaves, depth, test accuracy, pruning time) and writes
# prunekit-tree/report.html (trees drawn before/after, interactive accuracy-vs-leaves curve)
prunekit tree "${args[@]}" --out prunekit-tree --quiet
echo "open prunekit-tree/report.html in a browser"
