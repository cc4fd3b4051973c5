"""Plots (matplotlib, Agg backend): learning curves, sweeps, projections, diagnostics."""

from dlcore.plots._curves import plot_learning_curves, smooth
