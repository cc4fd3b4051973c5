"""Losses."""

from dlcore.losses._classification import binary_hinge, cross_entropy, mean_loss, multiclass_hinge
from dlcore.losses._penalties import elastic_net_penalty, l1_penalty, l2_penalty, make_penalty, smooth_labels
