"""The planner's behaviour as a campaign relies on it: suggest, ingest, restore."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from athanor.planner import Planner, PlannerError

FAST = {"raw_samples": 64, "num_restarts": 2, "maxiter": 30, "mc_samples": 32}

SQUARE = {
    "parameters": [
        {"name": "x", "type": "continuous", "low": 0, "high": 1},
        {"name": "y", "type": "continuous", "low": 0, "high": 1},
    ]
}
MAXIMIZE_F = [{"name": "f", "goal": "maximize"}]


def bump(p: dict) -> float:
    return -((p["x"] - 0.3) ** 2) - (p["y"] - 0.7) ** 2


def run(planner: Planner, fn, steps: int) -> None:
    for _ in range(steps):
        (s,) = planner.suggest(1)
        planner.ingest(s.params, {"f": fn(s.params)})


def branin(p: dict) -> float:
    x1, x2 = p["x1"], p["x2"]
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


# ---------------------------------------------------------------- initial design


def test_initial_design_respects_linear_constraints_and_compositions():
    space = {
        "parameters": [
            {"name": "temperature", "type": "continuous", "low": 600, "high": 1100},
            {"name": "dwell", "type": "continuous", "low": 0.5, "high": 12, "log": True},
            {"name": "a", "type": "continuous", "low": 0, "high": 1},
            {"name": "b", "type": "continuous", "low": 0, "high": 0.4},
            {"name": "c", "type": "continuous", "low": 0.1, "high": 1},
        ],
        "compositions": [{"name": "cations", "components": ["a", "b", "c"], "total": 1}],
        "constraints": ["temperature + 40*dwell <= 1200"],
    }
    planner = Planner(space, MAXIMIZE_F, n_initial=30)
    suggestions = planner.suggest(30)
    assert all(s.phase == "initial" and s.model == "Sobol" for s in suggestions)
    for s in suggestions:
        p = s.params
        assert p["temperature"] + 40 * p["dwell"] <= 1200 + 1e-6
        assert p["a"] + p["b"] + p["c"] == pytest.approx(1.0)
        assert p["b"] <= 0.4 + 1e-9 and p["c"] >= 0.1 - 1e-9
        assert 0.5 <= p["dwell"] <= 12
    temps = [s.params["temperature"] for s in suggestions]
    assert max(temps) - min(temps) > 300  # space-filling, not clustered


def test_design_continues_where_it_stopped():
    one = Planner(SQUARE, MAXIMIZE_F, seed=3, n_initial=8)
    first = [s.params for s in one.suggest(2)] + [s.params for s in one.suggest(2)]
    other = Planner(SQUARE, MAXIMIZE_F, seed=3, n_initial=8)
    assert [s.params for s in other.suggest(4)] == first


# ---------------------------------------------------------------- model phase


def test_compositions_sum_to_total_in_model_phase():
    space = {
        "parameters": [
            {"name": f"c{i}", "type": "continuous", "low": 0, "high": 100} for i in range(3)
        ]
        + [{"name": "t", "type": "continuous", "low": 0, "high": 1}],
        "compositions": [{"name": "mix", "components": ["c0", "c1", "c2"], "total": 100}],
    }
    planner = Planner(space, MAXIMIZE_F, seed=1, n_initial=5, settings=FAST)

    def f(p):
        return -((p["c0"] - 50) ** 2) / 1e3 - (p["t"] - 0.5) ** 2

    run(planner, f, 8)
    batch = planner.suggest(3)
    assert all(s.phase == "model" for s in batch)
    for s in batch:
        assert sum(s.params[f"c{i}"] for i in range(3)) == pytest.approx(100.0, abs=1e-6)
        assert all(0 <= s.params[f"c{i}"] <= 100 for i in range(3))


def test_mixed_space_gives_valid_choices_and_integers():
    space = {
        "parameters": [
            {"name": "x", "type": "continuous", "low": 0, "high": 1},
            {"name": "passes", "type": "integer", "low": 1, "high": 6},
            {"name": "size", "type": "ordinal", "values": [1, 2, 4, 8]},
            {"name": "precursor", "type": "categorical", "values": ["oxide", "nitrate", "acetate"]},
            {"name": "atmosphere", "type": "fixed", "value": "air"},
        ]
    }
    planner = Planner(space, MAXIMIZE_F, seed=2, settings=FAST)

    def f(p):
        bonus = {"oxide": 0.0, "nitrate": 1.0, "acetate": 0.3}[p["precursor"]]
        return bonus - (p["x"] - 0.6) ** 2 - 0.1 * abs(p["passes"] - 4) + 0.05 * p["size"]

    run(planner, f, 14)
    batch = planner.suggest(2)
    assert batch[0].phase == "model"
    for s in batch:
        p = s.params
        assert isinstance(p["passes"], int) and 1 <= p["passes"] <= 6
        assert p["size"] in (1, 2, 4, 8)
        assert p["precursor"] in ("oxide", "nitrate", "acetate")
        assert p["atmosphere"] == "air"
    assert planner.best().params["precursor"] == "nitrate"


def test_pool_suggestions_are_untried_pool_rows():
    rng = np.random.default_rng(0)
    pool = [{"x": float(a), "y": float(b)} for a, b in rng.random((40, 2))]
    planner = Planner(SQUARE, MAXIMIZE_F, seed=0, pool=pool, n_initial=4, settings=FAST)
    seen = []
    for _ in range(8):
        pending = [pool[0]]
        for s in planner.suggest(2, pending=pending):
            assert s.params in pool
            assert s.params not in seen and s.params != pool[0]
            seen.append(s.params)
            planner.ingest(s.params, {"f": bump(s.params)})
    assert len(seen) == 16


def test_pool_runs_out_with_a_clear_error():
    pool = [{"x": 0.1, "y": 0.2}, {"x": 0.5, "y": 0.5}]
    planner = Planner(SQUARE, MAXIMIZE_F, pool=pool)
    assert len(planner.suggest(5)) == 2
    for row in pool:
        planner.ingest(row, {"f": 1.0})
    with pytest.raises(PlannerError, match="every candidate row has been tried"):
        planner.suggest(1)


def test_pending_experiments_push_suggestions_apart():
    planner = Planner(SQUARE, MAXIMIZE_F, seed=4, n_initial=6, settings=FAST)
    run(planner, bump, 10)
    state = planner.state()
    (alone,) = Planner.from_state(state).suggest(1)
    (beside,) = Planner.from_state(state).suggest(1, pending=[alone.params])
    distance = math.dist(alone.params.values(), beside.params.values())
    assert distance > 0.02
    assert beside.n_pending == 1


def test_batch_points_differ():
    planner = Planner(SQUARE, MAXIMIZE_F, seed=5, n_initial=6, settings=FAST)
    run(planner, bump, 8)
    a, b, c = (tuple(s.params.values()) for s in planner.suggest(3))
    assert min(math.dist(a, b), math.dist(a, c), math.dist(b, c)) > 1e-3


@pytest.mark.slow
def test_failure_region_is_learnt():
    """Experiments with x > 0.5 fail, and the objective rises towards them."""

    def landings(report: str) -> int:
        planner = Planner(SQUARE, MAXIMIZE_F, seed=6, n_initial=8, settings=FAST)
        landed = []
        while len(landed) < 12:
            (s,) = planner.suggest(1)
            if s.params["x"] > 0.5:
                planner.ingest(s.params, status=report)
            else:
                planner.ingest(s.params, {"f": s.params["x"] + s.params["y"]})
            if s.phase == "model":
                landed.append(s.params["x"] > 0.6)
        assert ("feasibility GP" in s.model) == (report == "failed")
        return sum(landed)

    learnt, ignored = landings("failed"), landings("abandoned")
    assert ignored >= 10
    assert learnt <= ignored / 2


def test_several_objectives_give_a_pareto_front():
    objectives = [{"name": "f", "goal": "maximize"}, {"name": "g", "goal": "maximize"}]
    planner = Planner(SQUARE, objectives, seed=7, n_initial=6, settings=FAST)
    for _ in range(12):
        (s,) = planner.suggest(1)
        x, y = s.params["x"], s.params["y"]
        planner.ingest(s.params, {"f": x * (1 - 0.5 * y), "g": (1 - x) * (1 - 0.5 * y)})
    assert s.model.endswith("qLogNEHVI")
    front = planner.pareto_front()
    values = [(o.outcomes["f"], o.outcomes["g"]) for o in front]
    others = [(o.outcomes["f"], o.outcomes["g"]) for o in planner.observations]
    for v in values:
        assert not any(w[0] >= v[0] and w[1] >= v[1] and w != v for w in others)
    assert len(front) >= 2


def test_outcome_constraint_is_respected_by_best():
    planner = Planner(
        SQUARE,
        MAXIMIZE_F,
        [{"name": "purity", "op": ">=", "bound": 0.5}],
        seed=8,
        n_initial=6,
        settings=FAST,
    )
    for _ in range(12):
        (s,) = planner.suggest(1)
        planner.ingest(s.params, {"f": s.params["x"], "purity": 1 - s.params["x"]})
    best = planner.best()
    assert best is not None and best.outcomes["purity"] >= 0.5
    assert best.params["x"] > 0.35


def test_target_objective_approaches_the_target():
    space = {"parameters": [{"name": "x", "type": "continuous", "low": 0, "high": 4}]}
    planner = Planner(
        space,
        [{"name": "gap", "goal": "target", "target": 2.0}],
        seed=9,
        n_initial=4,
        settings=FAST,
    )
    for _ in range(10):
        (s,) = planner.suggest(1)
        planner.ingest(s.params, {"gap": 0.5 + s.params["x"] ** 2 / 4})
    assert abs(planner.best().outcomes["gap"] - 2.0) < 0.05


def test_composite_objective_models_each_outcome_and_maximises_their_product():
    # purity rises with x; the gap must sit at 2.0 eV, reached where y is 0.5
    score = {
        "name": "score",
        "goal": "maximize",
        "product": [
            {"outcome": "purity"},
            {"outcome": "gap", "target": 2.0, "tolerance": 0.1},
        ],
    }
    planner = Planner(SQUARE, [score], seed=11, n_initial=5, settings=FAST)
    assert planner.outcomes == ["purity", "gap"]
    for _ in range(14):
        (s,) = planner.suggest(1)
        x, y = s.params["x"], s.params["y"]
        planner.ingest(s.params, {"purity": x, "gap": 1.5 + y})
    assert s.model.endswith("(composite objective)/qLogNEI")
    best = planner.best()
    assert best is not None
    assert best.params["x"] > 0.8 and abs(best.outcomes["gap"] - 2.0) < 0.1
    with pytest.raises(PlannerError, match="missing 'gap'"):
        planner.ingest({"x": 0.5, "y": 0.5}, {"purity": 0.5, "score": 0.4})


def test_composite_objective_must_be_maximised():
    with pytest.raises(PlannerError, match="'product'"):
        Planner(SQUARE, [{"name": "s", "goal": "minimize", "product": [{"outcome": "a"}]}])


# ---------------------------------------------------------------- state and warm start


def test_every_suggestion_says_how_it_was_chosen():
    planner = Planner(SQUARE, MAXIMIZE_F, seed=3, n_initial=4, settings=FAST)
    (first,) = planner.suggest(1)
    assert (first.phase, first.model, first.acquisition_value) == ("initial", "Sobol", None)
    run(planner, bump, 6)
    planner.ingest({"x": 0.9, "y": 0.1}, status="failed")
    s = planner.suggest(1, pending=[{"x": 0.5, "y": 0.5}])[0]
    assert s.phase == "model" and "qLogNEI" in s.model
    assert s.acquisition_value is not None and math.isfinite(s.acquisition_value)
    assert (s.n_observations, s.n_failures, s.n_pending) == (6, 1, 1)
    assert isinstance(s.seed, int) and len(s.data_digest) == 16
    assert json.loads(json.dumps(s.to_dict()))["data_digest"] == s.data_digest


def test_state_is_json_and_restores_the_same_next_suggestion():
    planner = Planner(SQUARE, MAXIMIZE_F, seed=10, n_initial=5, settings=FAST)
    run(planner, bump, 7)
    planner.ingest({"x": 0.9, "y": 0.9}, status="failed")
    restored = Planner.from_state(json.loads(json.dumps(planner.state())))
    pending = [{"x": 0.2, "y": 0.2}]
    assert restored.suggest(2, pending=pending) == planner.suggest(2, pending=pending)
    assert restored.state() == planner.state()
    # the digest names the data a suggestion saw: new data, new digest
    seen = planner.suggest(1, pending=pending)[0].data_digest
    planner.ingest({"x": 0.3, "y": 0.4}, {"f": 0.1})
    assert planner.suggest(1, pending=pending)[0].data_digest != seen


def test_warm_start_uses_prior_data():
    rng = np.random.default_rng(1)
    prior = [{"params": {"x": a, "y": b}} for a, b in rng.random((8, 2)).tolist()]
    for rec in prior:
        rec["outcomes"] = {"f": bump(rec["params"])}
    planner = Planner(SQUARE, MAXIMIZE_F, seed=11, settings=FAST)
    assert planner.warm_start(prior) == 8
    (s,) = planner.suggest(1)
    assert s.phase == "model" and s.n_observations == 8
    assert all(o.prior for o in planner.observations)
    assert math.dist((s.params["x"], s.params["y"]), (0.3, 0.7)) < 0.35


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("params", "outcomes", "hint"),
    [
        ({"x": 0.1, "y": 0.2, "z": 1}, {"f": 1}, "unknown parameter.*'z'"),
        ({"x": 0.1}, {"f": 1}, "missing parameter.*'y'"),
        ({"x": 2.0, "y": 0.2}, {"f": 1}, "params.x: 2 is outside the allowed range 0 to 1"),
        ({"x": 0.1, "y": 0.2}, {"f": float("nan")}, "outcomes.f.*not a finite number"),
        ({"x": 0.1, "y": 0.2}, {"g": 1.0}, "outcomes: missing 'f'"),
        ({"x": 0.1, "y": 0.2}, None, "needs outcomes"),
    ],
)
def test_bad_observations_are_refused_naming_the_field(params, outcomes, hint):
    planner = Planner(SQUARE, MAXIMIZE_F)
    with pytest.raises(PlannerError, match=hint):
        planner.ingest(params, outcomes)
    assert planner.observations == []


def test_bad_spaces_are_refused():
    with pytest.raises(PlannerError, match="no point satisfies"):
        Planner({**SQUARE, "constraints": ["x + y >= 3"]}, MAXIMIZE_F)
    with pytest.raises(PlannerError, match="every parameter is fixed"):
        Planner({"parameters": [{"name": "a", "type": "fixed", "value": 1}]}, MAXIMIZE_F)
    with pytest.raises(PlannerError, match=r"search_space.parameters"):
        Planner({"parameters": []}, MAXIMIZE_F)
    with pytest.raises(PlannerError, match="must be below high"):
        Planner(
            {"parameters": [{"name": "a", "type": "continuous", "low": 1, "high": 0}]}, MAXIMIZE_F
        )
    with pytest.raises(PlannerError, match=r"objectives\[0\].goal"):
        Planner(SQUARE, [{"name": "f", "goal": "maximise"}])


def test_bad_calls_are_refused():
    planner = Planner(SQUARE, MAXIMIZE_F)
    with pytest.raises(PlannerError, match="n: 0 is not allowed"):
        planner.suggest(0)
    with pytest.raises(PlannerError, match=r"pending\[0\]: unknown parameter"):
        planner.suggest(1, pending=[{"q": 1}])
    with pytest.raises(PlannerError, match="status: 'lost' is not allowed"):
        planner.ingest({"x": 0.1, "y": 0.1}, status="lost")
    with pytest.raises(PlannerError, match="not planner state"):
        Planner.from_state({"version": 99})


# ---------------------------------------------------------------- numerical trouble


def test_duplicate_points_and_constant_outcomes_do_not_stop_the_campaign():
    planner = Planner(SQUARE, MAXIMIZE_F, seed=12, n_initial=3, settings=FAST)
    for _ in range(6):
        planner.ingest({"x": 0.5, "y": 0.5}, {"f": 1.0})
    planner.ingest({"x": 0.2, "y": 0.5}, {"f": 1.0})
    batch = planner.suggest(2)
    assert len(batch) == 2 and all(s.phase == "model" for s in batch)
    assert all(0 <= v <= 1 for s in batch for v in s.params.values())


def test_failed_fit_falls_back_to_sobol_and_says_so(monkeypatch):
    from athanor.planner import models

    def broken(*args, **kwargs):
        raise RuntimeError("not positive definite")

    monkeypatch.setattr(models, "fit_gp", broken)
    planner = Planner(SQUARE, MAXIMIZE_F, seed=13, n_initial=2)
    run(planner, bump, 2)
    (s,) = planner.suggest(1)
    assert s.phase == "model" and s.model.startswith("Sobol (fallback: RuntimeError")


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_branin_beats_random_search():
    space = {
        "parameters": [
            {"name": "x1", "type": "continuous", "low": -5, "high": 10},
            {"name": "x2", "type": "continuous", "low": 0, "high": 15},
        ]
    }
    planner = Planner(space, [{"name": "f", "goal": "minimize"}], seed=0, settings=FAST)
    for _ in range(20):
        (s,) = planner.suggest(1)
        planner.ingest(s.params, {"f": branin(s.params)})
    rng = np.random.default_rng(0)
    random_best = min(branin({"x1": -5 + 15 * a, "x2": 15 * b}) for a, b in rng.random((20, 2)))
    assert planner.best().outcomes["f"] < min(random_best, 1.5)


def test_outliers_on_the_bad_side_are_winsorized_before_fitting():
    import torch

    from athanor.planner.models import TrainingData, winsorized
    from athanor.planner.space import Objective, OutcomeConstraint

    f = torch.tensor([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, -50.0, 90.0], dtype=torch.float64)
    c = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 40.0, -30.0], dtype=torch.float64)
    data = TrainingData(torch.zeros(9, 1), torch.stack([f, c], -1), ["f", "c"], None, None)
    Y = winsorized(
        data,
        [Objective(name="f", goal="maximize")],
        [OutcomeConstraint(name="c", op="<=", bound=5.0)],
    )
    assert Y[7, 0] > 0  # the disastrous experiment is pulled up to the fence ...
    assert Y[8, 0] == 90.0  # ... the best one is kept as measured
    assert 5.0 < Y[7, 1] < 40.0  # an infeasible outlier stays infeasible, only less extreme
    assert Y[8, 1] == -30.0
    assert torch.equal(Y[:7], data.Y[:7])


# ---------------------------------------------------------------- issue 18


def test_outcome_transform_is_chosen_by_leave_one_out_evidence():
    def heavy(p):  # log-normal-like: spans four decades
        return math.exp(9 * (p["x"] + p["y"]))

    chosen = {}
    for transform in ("auto", "raw"):
        planner = Planner(
            SQUARE, MAXIMIZE_F, seed=14, settings={**FAST, "outcome_transform": transform}
        )
        rng = np.random.default_rng(3)
        for a, b in rng.random((12, 2)):
            planner.ingest({"x": a, "y": b}, {"f": heavy({"x": a, "y": b})})
        (s,) = planner.suggest(1)
        chosen[transform] = (s.model, planner.state()["fits"]["f"]["transform"])
    assert chosen["auto"][0].startswith("SingleTaskGP (f log)")
    assert chosen["auto"][1] == [0.0, 0.0]  # positive outcomes: the plain log
    assert chosen["raw"] == ("SingleTaskGP/qLogNEI", [1.0, 0.0])


def test_heavy_tailed_outcome_is_found_with_the_transform():
    # the model's samples go back to the measured scale: the best is still sought
    settings = {**FAST, "outcome_transform": "auto"}
    planner = Planner(SQUARE, MAXIMIZE_F, seed=15, n_initial=5, settings=settings)
    run(planner, lambda p: math.exp(8 * bump(p)), 14)
    assert "(f " in planner.suggest(1)[0].model  # a transform other than raw was chosen
    assert math.dist(planner.best().params.values(), (0.3, 0.7)) < 0.15


def test_fits_are_kept_until_the_data_has_grown_above_large_data():
    settings = {**FAST, "large_data": 10, "refit_growth": 0.5, "outcome_transform": "auto"}
    planner = Planner(SQUARE, MAXIMIZE_F, seed=16, n_initial=5, settings=settings)
    run(planner, bump, 12)
    fitted = []
    for _ in range(8):
        (s,) = planner.suggest(1)
        fitted.append(planner.state()["fits"]["f"]["n"])
        planner.ingest(s.params, {"f": bump(s.params)})
    # every call refits up to 10 points, then at 15 (1.5 x 10); in between it conditions
    assert fitted == [10, 10, 10, 15, 15, 15, 15, 15]
    assert planner.state()["fits"]["f"]["transform_n"] == 15  # chosen again at a refit
    every = Planner.from_state({**planner.state(), "settings": {**settings, "refit_growth": 0}})
    every.suggest(1)
    assert every.state()["fits"]["f"]["n"] == 20


@pytest.mark.parametrize("batch", ["joint", "greedy"])
def test_batches_differ_and_respect_compositions(batch):
    space = {
        "parameters": [
            {"name": f"c{i}", "type": "continuous", "low": 0, "high": 1} for i in range(3)
        ],
        "compositions": [{"name": "mix", "components": ["c0", "c1", "c2"], "total": 1}],
    }
    planner = Planner(space, MAXIMIZE_F, seed=17, n_initial=5, settings={**FAST, "batch": batch})
    run(planner, lambda p: -((p["c0"] - 0.5) ** 2) - (p["c1"] - 0.2) ** 2, 8)
    pending = [{"c0": 0.5, "c1": 0.2, "c2": 0.3}]
    points = [tuple(s.params.values()) for s in planner.suggest(4, pending=pending)]
    assert all(sum(p) == pytest.approx(1.0, abs=1e-6) for p in points)
    assert min(math.dist(a, b) for i, a in enumerate(points) for b in points[i + 1 :]) > 1e-3


def test_pool_design_covers_every_cluster():
    rng = np.random.default_rng(4)
    dense = 0.1 + 0.05 * rng.random((95, 2))
    sparse = 0.85 + 0.05 * rng.random((5, 2))
    pool = [{"x": float(a), "y": float(b)} for a, b in np.concatenate([dense, sparse])]
    hits = {}
    for design in ("clusters", "random"):
        hits[design] = 0
        for seed in range(6):
            planner = Planner(
                SQUARE, MAXIMIZE_F, seed=seed, pool=pool, settings={"pool_design": design}
            )
            hits[design] += any(s.params["x"] > 0.5 for s in planner.suggest(5))
    assert hits["clusters"] == 6
    assert hits["random"] < 6


def test_pool_csv_columns_and_outcomes_are_mapped_to_names(tmp_path):
    path = tmp_path / "library.csv"
    rows = [(a, b, (a - 2) ** 2 + b) for a in range(5) for b in (0.1, 0.5, 0.9)]
    path.write_text(
        "QAgNO3(%),Seed volume (uL),Instability index\n"
        + "".join(f"{a},{b},{v}\n" for a, b, v in rows)
    )
    space = {
        "parameters": [
            {"name": "ag", "type": "continuous", "low": 0, "high": 4, "column": "QAgNO3(%)"},
            {
                "name": "seed",
                "type": "continuous",
                "low": 0,
                "high": 1,
                "column": "Seed volume (uL)",
            },
        ],
        "pool": str(path),
    }
    objective = [{"name": "instability", "goal": "minimize", "column": "Instability index"}]
    planner = Planner(space, objective, seed=18, n_initial=3, settings=FAST)
    assert len(planner.pool) == 15 and set(planner.pool[0]) == {"ag", "seed"}
    truth = {(a, b): v for a, b, v in rows}
    for _ in range(6):
        (s,) = planner.suggest(1)
        value = truth[(s.params["ag"], s.params["seed"])]
        planner.ingest(s.params, {"Instability index": value})
    assert planner.observations[0].outcomes.keys() == {"instability"}
    assert s.phase == "model"
    (tmp_path / "other.csv").write_text("ag,seed\n1,0.5\n")
    hint = r"no column 'QAgNO3\(%\)' for parameter 'ag'; its columns: 'ag', 'seed'"
    with pytest.raises(PlannerError, match=hint):
        Planner({**space, "pool": str(tmp_path / "other.csv")}, objective)
    twice = [{**p, "column": "ag"} for p in space["parameters"]]
    with pytest.raises(PlannerError, match="columns must be unique; more than one reads ag"):
        Planner({"parameters": twice}, objective)
