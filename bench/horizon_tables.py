"""The markdown tables of docs/model.md and the README from a multi-horizon backtest CSV.

    .venv/bin/python bench/horizon_tables.py bench/out/horizons_4windows.csv

Input: the CSV `bench/forecast_accuracy.py --horizons ... --csv` writes (one row per region x
horizon x window). Prints the per-horizon summary (means over regions and windows, coverage with
its lowest-highest window mean, region-windows below each baseline), P10-P90 coverage per horizon
bucket and window, and the per-region means of the windows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from electricity_assets.modeling.horizon_model import BUCKETS, bucket_of  # noqa: E402

DAY_AHEAD = "day-ahead"


def _order(horizons: pd.Series) -> list[str]:
    numbers = sorted(int(h) for h in horizons.unique() if h != DAY_AHEAD)
    return [str(h) for h in numbers] + ([DAY_AHEAD] if (horizons == DAY_AHEAD).any() else [])


def _bucket(horizon: str) -> str:
    if horizon == DAY_AHEAD:
        return DAY_AHEAD
    (index,) = bucket_of([int(horizon)])
    return f"{BUCKETS[index][0]}-{BUCKETS[index][1]} h" if index >= 0 else "other"


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for h in _order(rows["horizon_h"]):
        part = rows[rows["horizon_h"] == h]
        windows = part.groupby("window_end")["coverage_p10_p90"].mean()
        n = len(part)
        out.append({
            "horizon": h,
            "model (ex-ante)": f"{part['model_mdape'].mean():.2f}",
            "ex-post": f"{part['model_mdape_expost'].mean():.2f}",
            "EIA DF": f"{part['df_mdape'].mean():.2f}",
            "seasonal-naive": f"{part['naive_mdape'].mean():.2f}",
            "persistence": f"{part['persistence_mdape'].mean():.2f}",
            "P10-P90 % (window min-max)": (f"{part['coverage_p10_p90'].mean():.1f} "
                                           f"({windows.min():.1f}-{windows.max():.1f})"),
            **{f"below {who}": f"{(part['model_mdape'] < part[column]).sum()}/{n}"
               for who, column in (("DF", "df_mdape"), ("persistence", "persistence_mdape"),
                                   ("naive", "naive_mdape"))},
        })
    return pd.DataFrame(out)


def coverage_by_bucket(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.assign(bucket=rows["horizon_h"].map(_bucket))
    table = rows.pivot_table(index="window_end", columns="bucket", values="coverage_p10_p90",
                             aggfunc="mean")
    columns = [f"{low}-{high} h" for low, high in BUCKETS] + [DAY_AHEAD]
    table = table[[c for c in columns if c in table]].round(1)
    inside = int(((table >= 77) & (table <= 83)).sum().sum())
    table = table.reset_index().rename(columns={"window_end": "window ending"})
    table["window ending"] = table["window ending"].str[:10]
    table.attrs["inside"] = f"{inside} of {table.shape[0] * (table.shape[1] - 1)}"
    return table


def per_region(rows: pd.DataFrame, horizons: list[str]) -> pd.DataFrame:
    means = rows.groupby(["region", "horizon_h"])[
        ["model_mdape", "df_mdape", "persistence_mdape"]].mean()
    out = []
    for region in sorted(rows["region"].unique()):
        record = {"region": region}
        for h in horizons:
            if (region, h) not in means.index:
                continue
            m = means.loc[(region, h)]
            model = f"{m['model_mdape']:.2f}"
            record[f"{h} model"] = f"**{model}**" if m["model_mdape"] < m["df_mdape"] else model
            record[f"{h} DF"] = f"{m['df_mdape']:.2f}"
            if h != DAY_AHEAD and int(h) <= 6:
                record[f"{h} persistence"] = f"{m['persistence_mdape']:.2f}"
        out.append(record)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--regions-at", default="1,6,24,day-ahead",
                        help="horizons of the per-region table (default 1,6,24,day-ahead)")
    args = parser.parse_args(argv)
    rows = pd.read_csv(args.csv, dtype={"horizon_h": str})
    print(_markdown(summary(rows)), end="\n\n")
    buckets = coverage_by_bucket(rows)
    print(f"P10-P90 by bucket and window ({buckets.attrs['inside']} in 77-83 %; region-horizon-"
          f"windows: {rows['coverage_p10_p90'].between(77, 83).sum()} of {len(rows)}):\n")
    print(_markdown(buckets), end="\n\n")
    windows = rows.groupby(["horizon_h", "window_end"])["model_mdape"].mean().round(2)
    for h in _order(rows["horizon_h"]):
        print(f"h {h} per window: " + " / ".join(f"{v:.2f}" for v in windows.loc[h]))
    print()
    print(_markdown(per_region(rows, args.regions_at.split(","))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
