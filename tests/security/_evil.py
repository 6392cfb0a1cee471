"""Files that run code when an unsafe loader reads them: each writes the canary file."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path


class WritesCanary:
    def __init__(self, canary: Path) -> None:
        self.canary = str(canary)

    def __reduce__(self):
        return (exec, (f"open({self.canary!r}, 'w').write('foreign code ran')",))


def evil_pickle(canary: Path) -> bytes:
    return pickle.dumps(WritesCanary(canary))


def legacy_pt2(canary: Path, program_json: bytes) -> bytes:
    """A .pt2 in the older (torch 2.7) layout whose payloads are pickles: torch.export.load falls
    back to this layout and unpickles them with weights_only=False."""
    from torch._export.serde.schema import SCHEMA_VERSION

    payload = evil_pickle(canary)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("version", f"{SCHEMA_VERSION[0]}.{SCHEMA_VERSION[1]}")
        z.writestr("serialized_exported_program.json", program_json)
        for name in ("serialized_state_dict.pt", "serialized_constants.pt", "serialized_example_inputs.pt"):
            z.writestr(name, payload)
    return buffer.getvalue()


def rewrite_zip(data: bytes, change) -> bytes:
    """A copy of the zip archive ``data`` with ``change(name, bytes) -> (name, bytes) | None`` applied."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            item = change(info.filename, src.read(info.filename))
            if item is not None:
                z.writestr(item[0], item[1])
    return out.getvalue()
