#!/usr/bin/env bash
# Remove half the channels of a CNN (real speed-up), fine-tune with distillation, report.
# Then the same with your own model: --model package.module:factory plus --checkpoint.
#   bash examples/cli_structured.sh --quick
set -euo pipefail
quick=0; epochs=3
if [[ "${1:-}" == "--quick" ]]; then quick=1; epochs=1; fi
if (( ! quick )); then  # the quick mode (CI) runs only the second example
  prunekit nn structured prune --model digits-cnn --ratio 0.5 --train-epochs 10 \
    --finetune-epochs "$epochs" --out digits-slim.pt --plan plan.json \
    --report structured.html --quiet
fi

# your own model: a module on the Python path with a function returning an nn.Module
cat > my_models.py <<'PY'
from torch import nn


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
PY
# a checkpoint of its weights (a plain state_dict; read back with torch.load(weights_only=True))
python -c "import torch, my_models; torch.save(my_models.small_cnn().state_dict(), 'my.pt')"
prunekit nn structured prune --model my_models:small_cnn --input-shape 1,1,8,8 \
  --checkpoint my.pt --data digits --finetune-epochs "$epochs" --ratio 0.5 \
  --report my_structured.html --quiet
