"""Losses."""

from dlcore.losses._classification import cross_entropy, mean_loss
