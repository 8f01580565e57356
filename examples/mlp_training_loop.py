"""Sparsify an MLP to 90 % inside your own training loop (gradual AGP schedule, then fine-tune).

    python examples/mlp_training_loop.py [--quick]
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from prunekit.data import load_dataset
from prunekit.nn import Pruner, agp, model_sparsity

quick = "--quick" in sys.argv
torch.manual_seed(0)
ds = load_dataset("digits", seed=0)
train, _, test = ds.loaders(batch_size=64)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                      nn.Linear(256, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
epochs = 3 if quick else 15
steps = epochs * len(train)
# prune from 0 to 90 % over the first 60 % of training, every 10 steps (TF-MOT's PolynomialDecay)
pruner = Pruner(model, criterion="magnitude", optimizer=opt, prune_first_last=True,
                schedule=agp(0.9, begin_step=0, end_step=int(0.6 * steps), frequency=10)).prepare()

for _ in range(epochs):
    for x, y in train:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        pruner.mask_gradients()  # pruned weights get no update
        opt.step()
        pruner.step()  # re-apply masks, advance the schedule, prune when due

model = pruner.finalize()  # a plain nn.Sequential with the zeros baked in
with torch.no_grad():
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test)
print(f"sparsity {model_sparsity(model):.1%}, test accuracy {correct / len(ds.y_test):.3f}")
