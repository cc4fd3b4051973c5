"""Diagnostics: the lectures' debugging recipe as checks, layer statistics, curve reading, timings."""

from dlcore.diagnostics._curves import LABELS, Diagnosis, diagnose, diagnose_history
from dlcore.diagnostics._layer_stats import (
    activation_stats,
    gradient_norms,
    layer_activations,
    layer_stats,
    layer_stats_fn,
)
from dlcore.diagnostics._check import CheckReport, CheckResult, check_recipe
from dlcore.diagnostics._timing import SLOW_STEP_S, TimingReport, step_seconds, time_recipe
from dlcore.diagnostics._nans import divergence_report, find_nan_op, nan_debugger
