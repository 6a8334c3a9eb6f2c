"""The finops dashboard: ``finops dashboard`` (or ``streamlit run dashboards/app.py``) serves it.

Pages: Overview, Chargeback, Accelerators, Placements, Budgets, Prices (``dashboards/pages``). Each page
reads the store and the ledger through :mod:`finops` functions and handles its own errors, so one page's
trouble (an unreachable ledger, an old store) never stops the others.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run dashboards/app.py` puts only dashboards/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboards.data import load_config  # noqa: E402

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="finops", page_icon=":material/savings:", layout="wide")
nav = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page(PAGES / "chargeback.py", title="Chargeback", icon=":material/receipt_long:"),
    st.Page(PAGES / "accelerators.py", title="Accelerators", icon=":material/memory:"),
    st.Page(PAGES / "placements.py", title="Placements", icon=":material/place_item:"),
    st.Page(PAGES / "budgets.py", title="Budgets", icon=":material/account_balance_wallet:"),
    st.Page(PAGES / "prices.py", title="Prices", icon=":material/sell:"),
])
with st.sidebar:
    try:
        cfg = load_config()
        if cfg.dashboard.login:
            if st.user.get("is_logged_in", False):
                st.caption(f"Signed in as {st.user.get('email') or st.user.get('name') or 'you'}")
                st.button("Sign out", on_click=st.logout)
        else:
            st.caption("No login configured: served on this machine only, showing every team.")
        st.caption(f"Store: `{cfg.store.url}`")
    except Exception as e:  # noqa: BLE001 (a broken configuration is shown on each page, in one sentence)
        st.caption(f"Configuration: {e}")
nav.run()
