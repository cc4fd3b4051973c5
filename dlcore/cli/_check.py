"""``dlcore check EXPERIMENT``: the lectures' debugging recipe as a pass/fail report."""

from __future__ import annotations

from dlcore.cli._build import build_dataset, build_recipe
from dlcore.cli._run import prepare


def add_arguments(p) -> None:
    p.add_argument("experiment", help="experiment name in ./experiments or path to a .py file with get_config()")
    p.add_argument("--seed", type=int, default=0, help="seed of every check run (default 0)")
    p.add_argument("--steps", type=int, default=100, help="budget for 'the loss drops' (default 100)")
    p.add_argument("--overfit-steps", type=int, default=300, help="budget for overfitting (default 300)")


def cmd_check(args, overrides) -> int:
    from dlcore.diagnostics import check_recipe

    args.seeds = [args.seed]
    name, config, _ = prepare(args, overrides)
    data = build_dataset(config.dataset)
    recipe = build_recipe(config, data.num_classes)
    print(f"checking {name} (seed {args.seed}, learning rate {config.hparams.learning_rate:g})")
    report = check_recipe(recipe, data, hparams=dict(config.hparams), batch_size=config.batch_size,
                          seed=args.seed, steps=args.steps, overfit_steps=args.overfit_steps)
    print(report)
    return 0 if report.passed else 1
