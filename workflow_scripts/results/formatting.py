"""How a number is shown in the summary, the plots and the bold rule (a lead that vanishes at
the shown precision is no lead): three decimals, one above 100, three significant digits for
very large or very small values."""

from __future__ import annotations

import pandas as pd

MISSING = "missing"
UNRANKED_MARK = "†"  # a headline metric left out of the ranking


def format_value(value) -> str:
    if value is None or pd.isna(value):
        return MISSING
    value = float(value)
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.001):
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}"
