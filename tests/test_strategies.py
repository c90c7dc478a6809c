"""Selection strategies on fixed arrays, against values computed independently here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from al_core import strategies as st

P = np.array([[0.7, 0.2, 0.1],
              [0.4, 0.4, 0.2],
              [1 / 3, 1 / 3, 1 / 3],
              [1.0, 0.0, 0.0],
              [0.5, 0.3, 0.2]])


def _by_hand_entropy(row: list[float]) -> float:
    return -sum(p * math.log(p) for p in row if p > 0)


def test_uncertainty_scores_on_a_fixed_array() -> None:
    np.testing.assert_allclose(st.least_confidence(P), [0.3, 0.6, 2 / 3, 0.0, 0.5])
    np.testing.assert_allclose(st.margin(P), [1 - 0.5, 1 - 0.0, 1 - 0.0, 1 - 1.0, 1 - 0.2])
    np.testing.assert_allclose(st.entropy(P), [_by_hand_entropy(r) for r in P.tolist()])
    assert st.entropy(P)[2] == pytest.approx(math.log(3))  # uniform: the maximum


def test_vote_entropy_and_bald_by_hand() -> None:
    votes = np.array([[0, 0, 1], [0, 1, 1], [0, 2, 1], [0, 2, 0]])  # 4 models, 3 samples
    expected = [0.0, _by_hand_entropy([1 / 4, 1 / 4, 2 / 4]), _by_hand_entropy([1 / 4, 3 / 4])]
    np.testing.assert_allclose(st.vote_entropy(votes, 3), expected)
    stack = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]])  # 2 passes, 2 samples
    # sample 0: the passes disagree confidently: H[mean] = ln 2, mean H = H(0.9, 0.1); sample 1 agrees
    np.testing.assert_allclose(st.bald(stack), [math.log(2) - _by_hand_entropy([0.9, 0.1]), 0.0], atol=1e-12)


def test_top_scores_orders_and_breaks_ties_by_the_seed() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.9, 0.2])
    a = st.top_scores(scores, 4, np.random.default_rng(3))
    assert set(a[:3].tolist()) == {1, 3, 4} and a[3] == 2
    assert a.tolist() == st.top_scores(scores, 4, np.random.default_rng(3)).tolist()
    orders = {tuple(st.top_scores(scores, 3, np.random.default_rng(s)).tolist()) for s in range(20)}
    assert len(orders) > 1  # ties do not always favour the earliest row
    assert len(st.top_scores(scores, 100, np.random.default_rng(0))) == len(scores)


def _optimal_radius(v: np.ndarray, k: int) -> float:
    return min(st.covering_radius(v, v[list(c)]) for c in itertools.combinations(range(len(v)), k))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_k_center_greedy_is_within_twice_the_optimal_radius(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(11, 3))
    picks = st.k_center_greedy(v, k, np.random.default_rng(seed))
    assert len(set(picks.tolist())) == k
    greedy = st.covering_radius(v, v[picks])
    assert greedy <= 2 * _optimal_radius(v, k) + 1e-6


def test_k_center_greedy_starts_from_the_labeled_and_takes_the_farthest_each_time() -> None:
    rng = np.random.default_rng(0)
    v = st._vectors(rng.normal(size=(200, 8)))
    labeled = st._vectors(rng.normal(size=(5, 8)))
    picks, radii = st.k_center(v, 6, np.random.default_rng(0), labeled=labeled)
    assert picks.tolist() == st.k_center_greedy(v, 6, np.random.default_rng(0), labeled=labeled).tolist()
    centers = labeled
    for p, r in zip(picks, radii, strict=True):  # brute force: the farthest row from all centers so far
        d = np.sqrt(np.maximum(2 - 2 * (v @ centers.T), 0)).min(axis=1)
        assert d[p] == pytest.approx(d.max(), abs=1e-5) and r == pytest.approx(d.max(), abs=1e-5)
        centers = np.vstack([centers, v[p]])


def test_k_center_never_repeats_exact_duplicates() -> None:
    v = np.repeat(np.eye(3), 4, axis=0)  # 3 distinct points, 4 copies each
    picks = st.k_center_greedy(v, 5, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 5
    assert {tuple(v[p]) for p in picks[:3]} == {(1, 0, 0), (0, 1, 0), (0, 0, 1)}


def test_hybrid_picks_only_among_the_most_uncertain() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(size=(300, 5))
    scores = rng.random(300)
    picks = st.hybrid(scores, v, 10, np.random.default_rng(2), top_m=40)
    assert len(set(picks.tolist())) == 10
    assert set(picks.tolist()) <= set(np.argsort(-scores)[:40].tolist())


def _blobs(rng: np.random.Generator, centres: int = 5, each: int = 40) -> tuple[np.ndarray, np.ndarray]:
    c = np.eye(8)[:centres] * 10
    labels = np.repeat(np.arange(centres), each)
    return c[labels] + rng.normal(scale=0.5, size=(len(labels), 8)), labels


def test_typiclust_takes_one_typical_sample_per_uncovered_cluster() -> None:
    rng = np.random.default_rng(4)
    v, blob = _blobs(rng)
    picks = st.typiclust(v, 5, np.random.default_rng(0))
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3, 4]
    for p in picks:  # the most typical of its blob: near its centre
        members = v[blob == blob[p]]
        centre = members.mean(axis=0) / np.linalg.norm(members.mean(axis=0))
        cos = st._vectors(members) @ centre
        assert st._vectors(v[p:p + 1])[0] @ centre >= np.quantile(cos, 0.5)
    labeled = v[[0, 40]] + 0.01  # blobs 0 and 1 already have a label each
    picks = st.typiclust(v, 3, np.random.default_rng(0), labeled=labeled)
    assert sorted(blob[picks].tolist()) == [2, 3, 4]


def test_badge_draws_at_most_one_certain_row_and_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), size=100)
    probs[:60] = np.eye(4)[rng.integers(0, 4, 60)]  # certain: zero gradient
    feats = rng.normal(size=(100, 6))
    a = st.badge(probs, feats, 10, np.random.default_rng(9))
    # certain rows share one gradient embedding (zero): once one is a center the rest are at distance 0
    assert len(set(a.tolist())) == 10 and (a < 60).sum() <= 1
    assert a.tolist() == st.badge(probs, feats, 10, np.random.default_rng(9)).tolist()
    grads = np.linalg.norm(st._probs(probs) - np.eye(4)[probs.argmax(1)], axis=1) * np.linalg.norm(feats, axis=1)
    assert a[0] == int(np.argmax(grads))  # the largest gradient first


QUOTAS = [  # (pool groups, labeled counts, budget, expected quota)
    (["a"] * 10 + ["b"] * 10 + ["c"] * 10, {"a": 50, "b": 5, "c": 0}, 11, {"b": 3, "c": 8}),
    (["a"] * 10 + ["b"] * 10 + ["c"] * 2, {"a": 0, "b": 0, "c": 0}, 12, {"a": 5, "b": 5, "c": 2}),
    (["a"] * 3 + ["b"] * 30, {"a": 0, "b": 100}, 10, {"a": 3, "b": 7}),
    (["x"] * 4, {}, 10, {"x": 4}),
]


@pytest.mark.parametrize(("groups", "labeled", "budget", "expected"), QUOTAS)
def test_balanced_quota_fills_the_rarest_groups_first(groups: list[str], labeled: dict[str, int],
                                                      budget: int, expected: dict[str, int]) -> None:
    assert st.balanced_quota(groups, labeled, budget, np.random.default_rng(0)) == expected


def test_balanced_fills_groups_by_score() -> None:
    groups = ["a"] * 5 + ["b"] * 5
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.5, 0.4, 0.6, 0.7, 0.0])
    picks = st.balanced(groups, {"a": 1, "b": 0}, 3, np.random.default_rng(0), scores=scores)
    assert sorted(picks.tolist()) == [1, 7, 8]  # two for b, one for a: each group's highest scores
    assert picks[0] in (7, 8)  # the rarer group's first


def test_nearest_to_seeds_and_in_batch_duplicates() -> None:
    rng = np.random.default_rng(6)
    v = rng.normal(size=(50, 4))
    seeds = rng.normal(size=(3, 4))
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    s_unit = seeds / np.linalg.norm(seeds, axis=1, keepdims=True)
    np.testing.assert_allclose(st.nearest_to_seeds(v, seeds), (unit @ s_unit.T).max(axis=1), atol=1e-5)
    twins = np.vstack([v[:5], v[:5] * 2.0, v[5:8]])  # rows 5..9 repeat rows 0..4 (same direction)
    kept = st.drop_near_duplicates(twins, np.arange(len(twins)), 0.999)
    assert kept.tolist() == [0, 1, 2, 3, 4, 10, 11, 12]
    assert st.drop_near_duplicates(twins, np.arange(len(twins)), 0.999, kept=v[:1]).tolist()[0] == 1


BAD = [
    (lambda: st.entropy(np.array([[0.5, np.nan]])), "probs row 0 holds a NaN"),
    (lambda: st.entropy(np.array([0.5, 0.5])), "2-d array"),
    (lambda: st.top_scores(np.ones(3), -1, np.random.default_rng(0)), "budget must be a non-negative"),
    (lambda: st.random_pick(5, 2, 0), "rng must be a numpy Generator"),
    (lambda: st.vote_entropy(np.array([[0, 5]]), 3), r"class indices in \[0, 3\)"),
    (lambda: st.hybrid(np.ones(3), np.ones((4, 2)), 1, np.random.default_rng(0)), "differ in length"),
    (lambda: st.nearest_to_seeds(np.ones((3, 2)), np.zeros((0, 2))), "seeds is empty"),
    (lambda: st.nearest_to_seeds(np.ones((3, 2)), np.ones((1, 3))), "dimension 3"),
    (lambda: st.drop_near_duplicates(np.ones((3, 2)), np.arange(3), 2.0), "threshold"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_arguments_raise_value_errors(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=message):
        call()
