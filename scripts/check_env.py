"""Fail the set-up if anything replaced the pinned CPU torch."""

import sys

import torch

EXPECTED = "2.13.0"
if not torch.__version__.startswith(EXPECTED):
    sys.exit(f"torch {torch.__version__} is installed; prunekit's environment pins {EXPECTED}")
print(f"environment ok: torch {torch.__version__}")
