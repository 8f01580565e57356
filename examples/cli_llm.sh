#!/usr/bin/env bash
# One-shot (Wanda) pruning of the bundled MiniLM sentence model with calibration text,
# saved in the compact format, with an HTML report.
#   bash examples/cli_llm.sh --quick   # 8 short calibration samples
# Calibration text: by default a built-in corpus (prunekit.nn.oneshot.corpus); pass your own
# plain-text file with --calibration (paragraphs separated by blank lines).
set -euo pipefail
if [[ "${1:-}" == "--quick" ]]; then
  args=(--n-samples 8 --max-length 32)
else
  args=(--n-samples 64 --max-length 128)
fi
python - <<'PY'
from prunekit.nn.oneshot.corpus import builtin_sentences
with open("calibration.txt", "w", encoding="utf-8") as fh:
    fh.write("\n\n".join(builtin_sentences()))
PY
prunekit llm --method wanda --sparsity 0.5 --calibration calibration.txt "${args[@]}" \
  --threads 1 --output minilm-50.safetensors --report llm.html --quiet
prunekit nn compact-info minilm-50.safetensors > minilm-50.txt
head -n 3 minilm-50.txt
