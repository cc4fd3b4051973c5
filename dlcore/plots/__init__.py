"""Plots (matplotlib, Agg backend): learning curves, sweeps, projections, diagnostics."""

from dlcore.plots._curves import plot_learning_curves, smooth
from dlcore.plots._save import pyplot, save_figure
from dlcore.plots._diagnostics import plot_confusion_matrix, plot_examples, plot_histograms, plot_layer_stats
from dlcore.plots._lr_finder import plot_lr_finder, plot_trajectories
from dlcore.plots._projection import plot_projection
from dlcore.plots._sweep import plot_heatmap, plot_metric_vs_axis, plot_point_curves
