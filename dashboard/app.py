"""Streamlit dashboard: every region at a glance, then one region in detail.

Two pages (`st.navigation`): the overview (`/`) and a region (`/region?region=CAL&start=
2020-03-18&end=2020-04-01`); the region and the date range live in the URL, so a view can be
shared. Reads the serving snapshot through `dashboard.queries` only; never trains or ingests.
Run: `streamlit run dashboard/app.py` (the `electricity-stack` command starts it for you).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import ui  # noqa: E402

st.set_page_config(page_title="US electricity demand", layout="wide",
                   initial_sidebar_state="expanded")
page = st.navigation([
    st.Page(ui.OVERVIEW_PATH, title="Overview: all regions", default=True),
    st.Page(ui.REGION_PATH, title="Region detail", url_path="region"),
])
page.run()
