"""The run report: one self-contained HTML file with inline SVG charts, from plain data.

```python
from honing.report import ReportData, write_report
write_report("runs/x/report.html", ReportData(title="digits", task="classification",
                                               metric="val_accuracy", trials=[...], ...))
```
Nothing is fetched when the page opens (no scripts, fonts, styles or images from the network),
and the output depends only on the data (no timestamps added).
"""

from __future__ import annotations

from honing.report._data import ReportData
from honing.report._drift import drift_page, drift_section
from honing.report._render import render_report, write_report

__all__ = ["ReportData", "drift_page", "drift_section", "render_report", "write_report"]
