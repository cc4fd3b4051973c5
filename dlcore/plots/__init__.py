"""Plots (matplotlib, Agg backend): learning curves, sweeps, projections, diagnostics."""

from dlcore.plots._curves import plot_learning_curves, smooth
from dlcore.plots._diagnostics import plot_confusion_matrix, plot_examples, plot_histograms, plot_layer_stats
