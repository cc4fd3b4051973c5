"""Statistics across seeds: means with confidence intervals."""

from dlcore.stats._summary import mean_ci, summarize
