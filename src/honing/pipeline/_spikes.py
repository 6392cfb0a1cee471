"""The ``spikes`` stage: for a spiking model (the ``snn`` family), its spike rate per layer and
its synaptic operations per sample against the multiply-accumulates of the same network run
once, on the test rows (results.json ``spikes``, the report, the console)."""

from __future__ import annotations

from typing import Any

from honing.pipeline._context import RunContext

ROWS = 1000  # test rows run to count spikes


class SpikesStage:
    """Spike rates and synaptic operations of a spiking final model."""

    name = "spikes"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        model, data = ctx.model, ctx.data
        if model is None or data is None or not hasattr(model, "spike_stats"):
            return None
        rows = data.test if data.test is not None else data.val
        if rows is None:
            return None
        device = next((p.device for p in model.parameters()), None)
        stats = model.spike_stats(rows.x[:ROWS].to(device))
        stats["rows"] = min(ROWS, len(rows))
        ctx.results["spikes"] = stats
        ctx.say(f"spikes: {stats['time_steps']} time steps ({stats['encoding']} input); spike rate "
                + ", ".join(f"{k} {v:.3f}" for k, v in stats["spike_rate"].items())
                + f"; {stats['synaptic_ops']:,.0f} synaptic operations per sample against {stats['ann_macs']:,.0f} "
                  "multiply-accumulates of the same network run once")
        return {"synaptic_ops": stats["synaptic_ops"]}


def spikes_tables(s: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not s:
        return []
    rows = [[k, f"{v:.4f}"] for k, v in s["spike_rate"].items()]
    note = (f"{s['time_steps']} time steps, {s['encoding']} input encoding, {s['rows']} rows. Synaptic operations per "
            f"sample: {s['synaptic_ops']:,.0f} (an accumulate per spike per outgoing synapse; the first layer's "
            f"direct input is multiply-accumulates), against {s['ann_macs']:,.0f} multiply-accumulates of the same "
            f"layers run once as a plain network (ratio {s['ops_ratio']:.2f}).")
    return [{"title": "Spiking network", "note": note, "columns": ["layer", "spike rate (per neuron per step)"],
             "rows": rows}]
