"""How much ``measure_latency_ratio`` moves between processes, with the search's short timing and
the longer one it uses near a limit (issue 15; bench/README.md, Fashion-MNIST architecture search).

Two networks the Fashion-MNIST search chose (stem 16 s2, then conv 48 s2 with a 32-unit hidden
layer, or conv 24 s2 with a 64-unit one; fresh weights), each timed against the example's CNN with
6 rounds of 20 passes (the short timing) and 20 rounds of 50 (the long one), 1 torch thread. Each
process prints one JSON line: ratio and seconds per timing. The spread is over processes:

usage: for i in $(seq 8); do bench/run.sh bench/nas_latency_spread.py; done
"""

from __future__ import annotations

import json
import time

import torch

from honing.models import create_model
from honing.pipeline._objective import measure_latency_ratio, served_forward

SHAPE = (1, 28, 28)


def mobile(width: int, hidden: int) -> torch.nn.Module:
    return create_model("mobilenet", input_shape=SHAPE, num_outputs=10, stem=16, stem_stride=2, last=None,
                        dropout=0.0, global_pool=None, head_hidden=hidden,
                        blocks=[{"op": "conv", "out": width, "kernel": 3, "stride": 2, "se": False}])


def main() -> None:
    torch.set_num_threads(1)
    cnn = create_model("cnn", input_shape=SHAPE, num_outputs=10, channels=[16, 32], batch_norm=True, dropout=0.2,
                       head_hidden=128, global_pool=None)
    reference = served_forward(cnn, SHAPE, 1, "torch")[0]
    out = {}
    for name, model in (("conv48-hidden32", mobile(48, 32)), ("conv24-hidden64", mobile(24, 64))):
        for rounds, repeats in ((6, 20), (20, 50)):
            t0 = time.perf_counter()
            ratio = measure_latency_ratio(model, reference, SHAPE, rounds=rounds, repeats=repeats)
            out[f"{name} {rounds}x{repeats}"] = {"ratio": round(ratio, 4), "seconds": round(time.perf_counter() - t0, 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
