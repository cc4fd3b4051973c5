"""Sweeps: many seeds (and hyperparameters) as one compiled program."""

from dlcore.sweep._seeds import (
    MAX_SEEDS,
    broadcast_hparams,
    init_states,
    parse_seeds,
    resolve_conv_impl,
    runs_one_per_device,
    run_batch,
    run_seeds,
    seed_mesh,
)
from dlcore.sweep._space import Axis, Space, axis_from_spec, parse_steps, space_from_spec
from dlcore.sweep._search import (
    STRATEGIES,
    Budget,
    SearchPlan,
    grid_points,
    random_points,
    refine_points,
    run_search,
    search_plan,
)
from dlcore.sweep._measure import Measure, measure_seeds, run_measured_study
from dlcore.sweep._study import (
    Selection,
    Setup,
    StudyResult,
    check_selection,
    default_memory_budget,
    first_stage_points,
    plan_chunks,
    run_study,
    runs_in_memory,
    study_history,
    study_rows,
)
