"""honing: optimizing and fine-tuning deep neural networks, from data to a tested model."""

from __future__ import annotations

__version__ = "0.1.0"
