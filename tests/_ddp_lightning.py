"""A LightningModule for tests/test_ddp.py, importable by ddp_spawn's child processes."""

from __future__ import annotations

import os

import lightning.pytorch as pl
import torch
from torch import nn


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                 nn.Linear(32, 3))
        self.losses: list[float] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.losses.append(float(loss))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.2)

    def on_train_end(self) -> None:
        cb = next(c for c in self.trainer.callbacks if hasattr(c, "pruner"))
        torch.save({"masks": cb.pruner.masks, "losses": self.losses,
                    "distributed": cb.pruner.distributed, "state": self.net.state_dict()},
                   f"{os.environ['PK_TEST_OUT']}/pl{self.global_rank}.pt")
