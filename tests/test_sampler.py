"""The keyed, resumable sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.data import batch_indices, chunk_batch_indices, epoch_permutation, steps_per_epoch
from dlcore.errors import ConfigError


def test_epoch_is_a_permutation(key):
    perm = np.asarray(epoch_permutation(key, 3, 50))
    assert sorted(perm.tolist()) == list(range(50))
    assert not np.array_equal(perm, np.asarray(epoch_permutation(key, 4, 50)))


@pytest.mark.parametrize("start,n", [(0, 7), (5, 13), (11, 1), (0, 40)])
def test_chunk_equals_reference(key, start, n):
    N, B = 23, 4  # 5 steps per epoch, remainder 3 dropped
    ref = np.stack([np.asarray(batch_indices(key, s, N, B)) for s in range(start, start + n)])
    fast = jax.jit(chunk_batch_indices, static_argnums=(2, 3, 4))(key, jnp.int32(start), n, N, B)
    np.testing.assert_array_equal(fast, ref)


def test_epoch_order_is_jax_permutation_of_the_epoch_key(key):
    # The documented definition (saved runs keep their data order): permutation(fold_in(key, e), N).
    for e, n in [(0, 50), (7, 3600), (2, 1000)]:
        np.testing.assert_array_equal(epoch_permutation(key, e, n),
                                      jax.random.permutation(jax.random.fold_in(key, e), n))


def test_each_epoch_visits_distinct_examples(key):
    idx = np.asarray(chunk_batch_indices(key, 0, 5, 23, 4))
    assert len(set(idx.ravel().tolist())) == 20


def test_batch_bigger_than_dataset():
    with pytest.raises(ConfigError, match="larger than the training set"):
        steps_per_epoch(10, 11)
