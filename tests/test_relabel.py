import numpy as np
import xarray as xr

from bayesgmm.relabel import permute_components, stephens_relabel


def scrambled_draws(n_draws=60, n_samples=80, K=4, seed=0):
    rng = np.random.default_rng(seed)
    reference = rng.dirichlet(np.full(K, 0.3), size=n_samples)
    clean = np.clip(reference[None] + rng.normal(0, 0.03, (n_draws, n_samples, K)), 1e-6, None)
    clean /= clean.sum(axis=2, keepdims=True)
    perms = np.array([rng.permutation(K) for _ in range(n_draws)])
    perms[0] = np.arange(K)
    scrambled = np.stack([d[:, p] for d, p in zip(clean, perms)])
    return reference, clean, scrambled, perms


def test_recovers_known_permutations():
    reference, clean, scrambled, perms = scrambled_draws()
    result = stephens_relabel(scrambled, reference)
    relabelled = np.stack([s[:, p] for s, p in zip(scrambled, result.permutations)])
    np.testing.assert_allclose(relabelled, clean)
    # permutations[i] undoes perms[i]: perms[i][permutations[i]] is the identity
    for p, q in zip(perms, result.permutations):
        np.testing.assert_array_equal(p[q], np.arange(len(p)))
    assert result.n_permuted == int(np.sum(np.any(perms != np.arange(4), axis=1)))
    assert result.converged


def test_callable_membership_gives_the_same_answer():
    reference, _, scrambled, _ = scrambled_draws(seed=1)

    def get(i):
        return scrambled[i]

    get.n_draws = len(scrambled)
    a = stephens_relabel(scrambled, reference)
    b = stephens_relabel(get, reference)
    np.testing.assert_array_equal(a.permutations, b.permutations)


def test_permute_components_moves_every_component_variable():
    K = 3
    perms = np.array([[2, 0, 1], [0, 1, 2], [1, 2, 0], [0, 2, 1]])  # chain-major, 2 x 2
    values = np.tile(np.arange(K, dtype=float), (2, 2, 1))
    ds = xr.Dataset({
        "weights": (("chain", "draw", "component"), values),
        "means": (("chain", "draw", "component", "feature"), values[..., None] * [1, 10]),
        "lp": (("chain", "draw"), np.zeros((2, 2))),
    })
    out = permute_components(ds, perms)
    np.testing.assert_array_equal(out["weights"].values.reshape(4, K), perms)
    np.testing.assert_array_equal(out["means"].values[..., 1].reshape(4, K), perms * 10)
    assert out["means"].dims == ds["means"].dims
    np.testing.assert_array_equal(out["lp"], ds["lp"])
