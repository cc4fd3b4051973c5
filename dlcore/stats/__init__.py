"""Statistics across seeds: means with confidence intervals."""

from dlcore.stats._summary import mean_ci, summarize
from dlcore.stats._compare import (
    Comparison,
    bootstrap_ci,
    compare,
    compare_to_reference,
    comparison_table,
    describe,
    iqm,
    prob_improvement,
    wilson_interval,
)
