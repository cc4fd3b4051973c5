"""Neural-network building blocks (Flax Linen modules with an explicit ``train`` flag)."""

from dlcore.nn._activations import ACTIVATIONS, get_activation
from dlcore.nn._dropout import Dropout, dropout
from dlcore.nn._mlp import MLP, NORMS
