"""The app a user writes by hand: FastAPI + torch, one forward pass per request.

usage: python plain_fastapi.py MODEL_DIR PORT
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI

from honing.artifacts import load_model

model = load_model(sys.argv[1])
model.model.eval()
torch.set_num_threads(1)
app = FastAPI()


@app.post("/predict")
def predict(body: dict) -> dict:  # a sync route: FastAPI runs it in its thread pool
    rows = body["rows"]
    x = model.prepare(np.asarray(rows, dtype=np.float32 if model.columns is None else object))
    with torch.no_grad():
        probs = torch.softmax(model.model(x), dim=1)
    names = model.class_names
    return {"predictions": [names[i] for i in probs.argmax(1).tolist()], "probabilities": probs.tolist()}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
