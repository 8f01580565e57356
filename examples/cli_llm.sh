#!/usr/bin/env bash
# One-shot (Wanda) pruning of the bundled MiniLM sentence model with calibration text,
# saved in the compact format, with an HTML report.
#   bash examples/cli_llm.sh --quick   # 8 short calibration samples
# Calibration text: without --calibration a built-in corpus (prunekit.nn.oneshot.corpus);
# --calibration takes a plain-text file (paragraphs separated by blank lines).
set -euo pipefail
if [[ "${1:-}" == "--quick" ]]; then
  args=(--n-samples 8 --max-length 32)
else
  args=(--n-samples 64 --max-length 128)
fi
# any plain text of your domain works; here a few paragraphs written inline
cat > calibration.txt <<'TXT'
Pruning removes weights that matter least, so a model gets smaller and often faster.

Calibration text shows the pruner which inputs the model sees, so it keeps what they need.

A sentence encoder maps each sentence to a vector; similar sentences get similar vectors.

Wanda scores each weight by its magnitude times the norm of its input activations.

SparseGPT updates the remaining weights to make up for the ones it removes.

Two of every four weights set to zero is the pattern some GPUs run faster.

The report compares the pruned embeddings with the dense ones on held-out sentences.

Perplexity measures how surprised a language model is by text it has not seen.
TXT
prunekit llm --method wanda --sparsity 0.5 --calibration calibration.txt "${args[@]}" \
  --threads 1 --output minilm-50.safetensors --report llm.html --quiet
prunekit nn compact-info minilm-50.safetensors > minilm-50.txt
head -n 3 minilm-50.txt
