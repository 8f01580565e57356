#!/usr/bin/env bash
# Train a small CNN on 8x8 digits, prune 90 % of its weights during fine-tuning (AGP schedule),
# save it in the compact sparse format and inspect the file.
#   bash examples/cli_nn_sparsity.sh --quick   # one epoch each, one-shot pruning
set -euo pipefail
if [[ "${1:-}" == "--quick" ]]; then
  args=(--epochs 1 --finetune-epochs 1 --method oneshot)
else
  args=(--epochs 5 --finetune-epochs 3 --method agp)
fi
# first/last layers stay dense by default (as in the API); --prune-first-last prunes them too
prunekit nn sparsity --model cnn --sparsity 0.9 "${args[@]}" --out prunekit-sparsity --quiet
# 2:4 semi-structured sparsity sets its own 50 % (an explicit other --sparsity is an error)
if [[ "${1:-}" != "--quick" ]]; then
  prunekit nn sparsity --model cnn --pattern 2:4 "${args[@]}" --out prunekit-2to4 --quiet
fi
# reads only the file header: no torch import, exact byte counts, typed metadata
prunekit nn compact-info prunekit-sparsity/model.safetensors
