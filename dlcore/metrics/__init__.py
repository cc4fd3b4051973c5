"""Metrics."""

from dlcore.metrics._classification import accuracy, correct
