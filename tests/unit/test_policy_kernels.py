"""The policy kernels: cube and grid entry points agree, and each policy keeps its promise."""

from __future__ import annotations

import numpy as np
import pytest

from greengrader.errors import ConfigError
from greengrader.scheduling.policies import (
    NO_CHOICE,
    POLICIES,
    CarbonOptimal,
    Policy,
    get_policy,
    sliding_min,
)


def _cube_from_grid(grid: np.ndarray, first: np.ndarray, width: int) -> np.ndarray:
    pad = np.concatenate([grid, np.full((grid.shape[0], width - 1), np.inf)], axis=1)
    return np.stack([pad[:, f : f + width] for f in first])


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("width", [1, 5])
def test_grid_path_equals_cube_path(name: str, width: int) -> None:
    rng = np.random.default_rng(7)
    grid = rng.integers(100, 110, size=(6, 200)).astype(float)  # many ties on purpose
    feasible = rng.random((6, 200)) > 0.3
    first = rng.integers(0, 200, size=300)
    jobs = rng.integers(0, 10_000, size=300)
    policy = get_policy(name, seed=3, static_region=2)
    r_grid, t_grid = policy.choose_grid(grid, first, width, feasible, jobs=jobs)
    fcube = _cube_from_grid(np.where(feasible, 0.0, np.inf), first, width) == 0.0
    r_cube, s_cube = policy.choose(_cube_from_grid(grid, first, width), fcube, jobs=jobs)
    assert np.array_equal(r_grid, r_cube)
    assert np.array_equal(t_grid, np.where(s_cube >= 0, first + s_cube, NO_CHOICE))


def test_carbon_optimal_takes_minimum_now_and_spatio_temporal_may_wait() -> None:
    costs = np.array([[[5.0, 1.0], [3.0, 4.0], [4.0, 0.5]]])
    assert [int(x[0]) for x in CarbonOptimal().choose(costs)] == [1, 0]
    assert [int(x[0]) for x in get_policy("spatio-temporal").choose(costs)] == [2, 1]
    assert [int(x[0]) for x in get_policy("worst").choose(costs)] == [0, 0]


def test_infeasible_regions_are_skipped_for_the_next_best() -> None:
    costs = np.array([[[1.0], [2.0], [3.0]]])
    feasible = np.array([[[False], [False], [True]]])
    for name in POLICIES:
        region, start = get_policy(name).choose(costs, feasible, regions=["a", "b", "c"])
        assert (int(region[0]), int(start[0])) == (2, 0), name


def test_no_feasible_cell_gives_no_choice() -> None:
    region, start = CarbonOptimal().choose(np.full((2, 3, 1), np.inf))
    assert region.tolist() == [NO_CHOICE, NO_CHOICE] and start.tolist() == [NO_CHOICE, NO_CHOICE]


def test_round_robin_cycles_and_random_is_reproducible_and_uniform() -> None:
    costs = np.zeros((9, 3, 1))
    region, _ = get_policy("round-robin").choose(costs, jobs=np.arange(9))
    assert region.tolist() == [0, 1, 2] * 3
    jobs = np.arange(30_000)
    a, _ = get_policy("random", seed=1).choose(np.zeros((30_000, 3, 1)), jobs=jobs)
    b, _ = get_policy("random", seed=1).choose(np.zeros((1, 3, 1)), jobs=[jobs[123]])
    assert a[123] == b[0]
    share = np.bincount(a, minlength=3) / a.size
    assert np.allclose(share, 1 / 3, atol=0.02)
    c, _ = get_policy("random", seed=2).choose(np.zeros((30_000, 3, 1)), jobs=jobs)
    assert not np.array_equal(a, c)


def test_static_keeps_its_home_and_starts_at_the_first_candidate_without_it() -> None:
    region, _ = get_policy("static", static_region="b").choose(np.zeros((1, 3, 1)), regions=["a", "b", "c"])
    assert region[0] == 1
    # The home left out of the candidates (it could not start this job): first candidate.
    region, _ = get_policy("static", static_region="b").choose(np.zeros((1, 2, 1)), regions=["a", "c"])
    assert region[0] == 0
    # Without names the home cannot be found at all.
    with pytest.raises(ValueError):
        get_policy("static", static_region="b").choose(np.zeros((1, 3, 1)))


def test_sliding_min_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    grid = rng.random((3, 50))
    value, offset = sliding_min(grid, 4)
    for r in range(3):
        for t in range(50):
            window = grid[r, t : t + 4]
            assert value[r, t] == window.min() and offset[r, t] == int(np.argmin(window))


def test_get_policy_by_dotted_path_and_unknown() -> None:
    assert isinstance(get_policy("greengrader.scheduling.policies:CarbonOptimal"), Policy)
    with pytest.raises(ConfigError):
        get_policy("cheapest")
