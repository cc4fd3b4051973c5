"""Losses."""

from dlcore.losses._classification import cross_entropy, mean_loss
from dlcore.losses._penalties import elastic_net_penalty, l1_penalty, l2_penalty, make_penalty, smooth_labels
