"""Temperature and alpha of distillation, with ``honing.compress.distill`` in one call (AdamW,
lr 0.002, weight decay 1e-4, batch 128, no schedule, the last epoch kept), against alpha = 0 (the
same loop on the labels alone). Teachers: those of `bench/compress_fashion.py` (run it first).

usage: bench/run.sh bench/distill_sweep.py TEACHER STUDENT_JSON SETTINGS_JSON EPOCHS
  e.g. bench/run.sh bench/distill_sweep.py mlp '{"name": "mlp", "hidden": [32]}' \
       '[[0.0, 1.0], [0.9, 2.0], [0.9, 4.0]]' 12
"""

from __future__ import annotations

import json
import sys
import time

import torch
from _common import OUT, save

import honing
from honing.compress import distill
from honing.data import load
from honing.models import create_model
from honing.train import METRICS


def main() -> int:
    teacher_name, student, settings, epochs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(2)
    saved = honing.load_model(OUT / "compress" / teacher_name / "teacher" / "model")
    data = load("fashion-mnist", val_size=0.1, preprocessor=saved.preprocessor)
    teacher, accuracy = saved.model.eval(), METRICS.get("accuracy")
    rows = []
    for alpha, temperature in settings:
        t0 = time.perf_counter()
        kw = dict(student)
        model = create_model(kw.pop("name"), input_shape=data.input_shape, num_outputs=10, seed=0, **kw)
        model = distill(teacher, model, data.train, data.val, temperature=temperature, alpha=alpha, epochs=epochs,
                        lr=0.002, weight_decay=1e-4, batch_size=128, seed=0)
        with torch.no_grad():
            acc = float(accuracy(model(data.test.x), data.test.y))
        rows.append({"alpha": alpha, "temperature": temperature, "test_accuracy": acc,
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(f"{teacher_name} -> {student} {epochs} epochs, alpha {alpha} T {temperature}: {acc:.4f}", flush=True)
    save(f"distill_sweep_{teacher_name}_{epochs}", {"teacher": teacher_name, "student": student, "epochs": epochs,
                                                     "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
