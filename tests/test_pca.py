"""dlcore.classic PCA (vs scikit-learn), t-SNE through scikit-learn, and the projection plot."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.classic import fit_pca, pca_inverse_transform, pca_transform, tsne
from dlcore.data import generate_digits
from dlcore.errors import ConfigError, ShapeError
from dlcore.plots import plot_projection


@pytest.fixture(scope="module")
def digits_flat():
    d = generate_digits()
    return d["x"].reshape(len(d["x"]), -1)[:400], d["y"][:400]


def test_pca_equals_sklearn(digits_flat):
    from sklearn.decomposition import PCA as SkPCA

    x = digits_flat[0].astype(np.float64)
    ref = SkPCA(n_components=5, svd_solver="full").fit(x)
    with jax.enable_x64():
        p = fit_pca(x, 5)
        # Same deterministic sign convention (largest-|.| entry of each component positive).
        np.testing.assert_allclose(p.components, ref.components_, atol=1e-8)
        np.testing.assert_allclose(p.explained_variance, ref.explained_variance_, rtol=1e-9)
        np.testing.assert_allclose(p.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-9)
        np.testing.assert_allclose(pca_transform(p, x), ref.transform(x), atol=1e-8)
    p32 = jax.jit(lambda a: fit_pca(a, 5))(x)
    np.testing.assert_allclose(np.abs(p32.components), np.abs(ref.components_), atol=2e-4)


def test_pca_properties(key):
    x = jax.random.normal(key, (50, 6)) @ jnp.diag(jnp.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1]))
    p = fit_pca(x, 6)
    np.testing.assert_allclose(p.components @ p.components.T, np.eye(6), atol=1e-5)
    assert np.all(np.diff(np.asarray(p.explained_variance)) <= 0)
    np.testing.assert_allclose(float(jnp.sum(p.explained_variance_ratio)), 1.0, rtol=1e-5)
    # All components: exact reconstruction; fewer: the best rank-k approximation's error.
    np.testing.assert_allclose(pca_inverse_transform(p, pca_transform(p, x)), x, atol=1e-4)
    p2 = fit_pca(x, 2)
    err = float(jnp.sum((pca_inverse_transform(p2, pca_transform(p2, x)) - x) ** 2))
    np.testing.assert_allclose(err, float(jnp.sum(p.explained_variance[2:])) * 49, rtol=1e-3)


def test_tsne_through_sklearn_is_seeded(digits_flat):
    from threadpoolctl import threadpool_limits

    x, _ = digits_flat
    with threadpool_limits(1):  # no OpenMP thread pool spinning against the other test worker
        z = tsne(x[:60], seed=3, perplexity=10.0, max_iter=250)
        assert z.shape == (60, 2) and np.all(np.isfinite(z))
        np.testing.assert_array_equal(z, tsne(x[:60], seed=3, perplexity=10.0, max_iter=250))
    with pytest.raises(ConfigError, match="perplexity"):
        tsne(x[:10], seed=0, perplexity=30.0)


def test_plot_projection(tmp_path, digits_flat):
    x, y = digits_flat
    z = pca_transform(fit_pca(x, 2), x)
    path = tmp_path / "pca.png"
    fig = plot_projection(z, y, str(path), title="digits PCA")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert len(ax.collections) == 10  # one scatter per class
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(y)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(i) for i in range(10)]
    fig2 = plot_projection(z[:20], y[:20], class_names=[f"digit {i}" for i in range(10)])
    assert fig2.axes[0].get_legend().get_texts()[0].get_text().startswith("digit")


def test_bad_input(digits_flat):
    x, y = digits_flat
    with pytest.raises(ConfigError, match="num_components"):
        fit_pca(x, 65)
    with pytest.raises(ShapeError, match="2-D"):
        fit_pca(x.reshape(-1, 8, 8), 2)
    with pytest.raises(ShapeError, match=r"\[N, 2\]"):
        plot_projection(x[:, :3], y)
    with pytest.raises(ShapeError, match="one label per point"):
        plot_projection(x[:, :2], y[:5])
