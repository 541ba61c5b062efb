"""Materialisation metadata every windowed asset shares: rows, window, regions, a preview."""

from datetime import datetime

import dagster as dg
import pandas as pd

from electricity_assets import quality


def window_metadata(rows: int, start: datetime, end: datetime, regions: list[str],
                    preview: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "window_start": dg.MetadataValue.text(start.isoformat()),
        "window_end": dg.MetadataValue.text(end.isoformat()),
        "regions": dg.MetadataValue.text(", ".join(regions) or "none"),
        "preview": dg.MetadataValue.md(quality.markdown_table(preview)),
    }
