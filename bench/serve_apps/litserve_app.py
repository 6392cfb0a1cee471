"""The same model behind LitServe, with its own dynamic batching (max batch 64, 2 ms).

usage: python litserve_app.py MODEL_DIR PORT
"""

from __future__ import annotations

import sys

import litserve as ls
import numpy as np
import torch

from honing.artifacts import load_model


class HoningAPI(ls.LitAPI):
    def setup(self, device):
        torch.set_num_threads(1)
        self.model = load_model(sys.argv[1])
        self.model.model.eval()

    def decode_request(self, request):
        rows = request["rows"]
        return self.model.prepare(np.asarray(rows, dtype=np.float32 if self.model.columns is None else object))

    def batch(self, inputs):
        return torch.cat(inputs)

    def predict(self, x):
        with torch.no_grad():
            return torch.softmax(self.model.model(x), dim=1)

    def unbatch(self, output):
        return list(output.split(1))

    def encode_response(self, output):
        names = self.model.class_names
        return {"predictions": [names[i] for i in output.argmax(1).tolist()], "probabilities": output.tolist()}


if __name__ == "__main__":
    api = HoningAPI(max_batch_size=64, batch_timeout=0.002)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(port=int(sys.argv[2]), host="127.0.0.1", generate_client_file=False)
