"""dlcore.random: keys by name and step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import random as dr


def test_key_is_fold_in_of_fold_in():
    expected = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(7), dr.stream_id("dropout")), 12)
    np.testing.assert_array_equal(dr.key(7, "dropout", 12), expected)
    np.testing.assert_array_equal(dr.step_key(dr.stream_key(dr.root_key(7), "dropout"), 12), expected)


def test_stream_ids_are_stable_and_distinct():
    # CRC-32 values: fixed forever, so saved runs keep their randomness across versions.
    assert dr.stream_id("params") == 265162483
    assert dr.stream_id("dropout") == 311029705
    ids = {dr.stream_id(s) for s in dr.STREAMS}
    assert len(ids) == len(dr.STREAMS)
    assert dr.stream_id("params") == dr.stream_id("params")


def test_streams_do_not_collide():
    keys = dr.stream_keys(3)
    flat = [tuple(np.asarray(k).tolist()) for k in keys.values()]
    assert len(set(flat)) == len(flat)


def test_traced_seed_equals_python_seed():
    traced = jax.jit(jax.vmap(lambda s: dr.key(s, "data", 5)))(jnp.arange(4, dtype=jnp.int32))
    for s in range(4):
        np.testing.assert_array_equal(traced[s], dr.key(s, "data", 5))


def test_example_keys_are_per_global_index(key):
    ks = dr.example_keys(key, jnp.arange(10))
    # A shard holding global indices 4..7 derives the same keys as the whole batch.
    np.testing.assert_array_equal(dr.example_keys(key, jnp.arange(4, 8)), ks[4:8])


@pytest.mark.parametrize("bad", [-1, 2**32, True])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        dr.root_key(bad)


def test_bad_stream_name():
    with pytest.raises(TypeError, match="stream"):
        dr.stream_id("")


def test_threefry_partitionable_on():
    assert jax.config.jax_threefry_partitionable


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 1625, 1626, 3600, 65536, 65537, 2_700_000])
def test_permutation_equals_jax_permutation(n):
    # 1625/1626: one and two sort rounds; 2.7M: three (one key: JAX's own sort of it takes seconds).
    for s in range(3 if n < 100_000 else 1):
        for k in (jax.random.PRNGKey(s), jax.random.key(s)):
            got, ref = dr.permutation(k, n), jax.random.permutation(k, n)
            assert got.dtype == ref.dtype and got.shape == (n,)
            np.testing.assert_array_equal(got, ref)


def test_permutation_jitted_and_vmapped_equals_jax():
    keys = jax.random.split(jax.random.PRNGKey(5), 6)
    got = jax.jit(jax.vmap(lambda k: dr.permutation(k, 3600)))(keys)
    ref = jax.vmap(lambda k: jax.random.permutation(k, 3600))(keys)
    np.testing.assert_array_equal(got, ref)
    assert sorted(np.asarray(got[0]).tolist()) == list(range(3600))


@pytest.mark.parametrize("high", [3, 70000, 2**32 - 1])
def test_stable_argsort_u32_matches_stable_key_value_sort(high):
    # Few distinct keys: most elements tie, so the order inside ties (stability) is tested too.
    rng = np.random.default_rng(0)
    bits = jnp.asarray(rng.integers(0, high, (4, 5000), dtype=np.uint64).astype(np.uint32))
    bits = bits.at[0, :10].set(jnp.uint32(2**32 - 1))  # the largest key, at the front
    got = dr._stable_argsort_u32(bits)
    ref = jax.lax.sort_key_val(bits, jnp.broadcast_to(jnp.arange(5000, dtype=jnp.int32), bits.shape))[1]
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, np.argsort(np.asarray(bits), axis=-1, kind="stable"))
