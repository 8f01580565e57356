"""Compact checkpoints vs general compression: file bytes of a pruned resnet18 per sparsity.

torchvision's resnet18 (random init, no download) is pruned with one global magnitude threshold
over all conv/linear weights (``prune_first_last=True``) to 50/80/90/95 %, then written as

* ``torch.save`` of the state dict (zeros stored in place),
* ``gzip -6`` of those ``torch.save`` bytes (the general-purpose baseline),
* ``save_compact(..., compression=None)`` (version-1 layout: bitmask / N:M, no entropy coding),
* ``save_compact`` (default ``compression="zlib"``) and ``compression="lzma"``.

Reported: bytes as a fraction of the dense float32 state-dict bytes, and median save / load
times over ``--repeats`` interleaved runs (noisy on a shared machine). Every compact file is
checked to load back bit-exact.

    python benchmarks/compact.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import io
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from prunekit._compat import import_torchvision
from prunekit._io import atomic_write_json
from prunekit.metrics import markdown_table
from prunekit.nn import prune_model
from prunekit.nn.io import dense_state_dict_bytes, load_compact, save_compact

SPARSITIES = (0.5, 0.8, 0.9, 0.95)
FORMATS = ("torch.save", "gzip -6", "compact v1", "compact zlib", "compact lzma")


def _writers(folder: Path) -> dict[str, Any]:
    def torch_save(sd: dict[str, torch.Tensor]) -> bytes:
        buf = io.BytesIO()
        torch.save(sd, buf)
        return buf.getvalue()

    def compact(compression: str | None) -> Any:
        def write(sd: dict[str, torch.Tensor]) -> bytes:
            path = folder / f"c-{compression}.safetensors"
            save_compact(sd, path, compression=compression)
            return path.read_bytes()

        return write

    return {
        "torch.save": torch_save,
        "gzip -6": lambda sd: gzip.compress(torch_save(sd), compresslevel=6),
        "compact v1": compact(None),
        "compact zlib": compact("zlib"),
        "compact lzma": compact("lzma"),
    }


def _reader(fmt: str, data: bytes, folder: Path) -> dict[str, torch.Tensor]:
    if fmt == "torch.save":
        return torch.load(io.BytesIO(data), weights_only=True)
    if fmt == "gzip -6":
        return torch.load(io.BytesIO(gzip.decompress(data)), weights_only=True)
    path = folder / "r.safetensors"
    path.write_bytes(data)
    return load_compact(path)


def measure(sparsity: float, repeats: int, folder: Path) -> dict[str, Any]:
    tv = import_torchvision()
    torch.manual_seed(0)
    model = tv.models.resnet18()
    prune_model(model, sparsity, prune_first_last=True)
    sd = model.state_dict()
    dense = dense_state_dict_bytes(sd)
    writers = _writers(folder)
    times: dict[str, dict[str, list[float]]] = {f: {"save": [], "load": []} for f in FORMATS}
    sizes: dict[str, int] = {}
    for _ in range(repeats):  # interleaved: every format once per repeat
        for fmt in FORMATS:
            t0 = time.perf_counter()
            data = writers[fmt](sd)
            t1 = time.perf_counter()
            back = _reader(fmt, data, folder)
            t2 = time.perf_counter()
            times[fmt]["save"].append(t1 - t0)
            times[fmt]["load"].append(t2 - t1)
            sizes[fmt] = len(data)
            for k, v in sd.items():  # bit-exact (the pruner writes +0.0)
                assert torch.equal(back[k], v) and back[k].dtype == v.dtype, (fmt, k)
    return {
        "sparsity": sparsity,
        "dense_bytes": dense,
        "bytes": sizes,
        "ratio": {f: sizes[f] / dense for f in FORMATS},
        "save_s": {f: statistics.median(times[f]["save"]) for f in FORMATS},
        "load_s": {f: statistics.median(times[f]["load"]) for f in FORMATS},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one sparsity, one repeat")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timing repeats")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/compact.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sparsities = (0.9,) if args.quick else SPARSITIES
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(s, repeats, Path(tmp)) for s in sparsities]
    table = []
    for r in rows:
        best = min(r["ratio"], key=r["ratio"].get)
        table.append({
            "sparsity": f"{r['sparsity']:.0%}",
            **{f: f"{r['ratio'][f]:.4f}x" for f in FORMATS},
            "smallest": best,
            "zlib vs gzip": f"{r['ratio']['compact zlib'] / r['ratio']['gzip -6']:.3f}",
        })
    timing = [
        {"sparsity": f"{r['sparsity']:.0%}",
         **{f"{f} save/load (s)": f"{r['save_s'][f]:.2f}/{r['load_s'][f]:.2f}" for f in FORMATS}}
        for r in rows
    ]
    print(f"resnet18 (random init), {rows[0]['dense_bytes'] / 2**20:.1f} MiB dense float32; "
          f"bytes / dense bytes; python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{platform.machine()}\n")
    print(markdown_table(table))
    print()
    print(markdown_table(timing))
    payload = {"rows": rows, "platform": platform.platform(), "torch": torch.__version__,
               "repeats": repeats, "quick": args.quick}
    atomic_write_json(Path(args.out), payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
