"""``feedbackloop experiment …`` and ``feedbackloop offpolicy``: plan, run, analyse and
decide experiments and bandits, and estimate a policy offline.

The group is assembled here from three modules, each owning its commands:
:mod:`.experiment_files` (``sample-size``, ``analyze``: work on files, no project),
:mod:`.experiment_store` (``create``, ``start``, ``status``, ``decide``… on stored
experiments), :mod:`.offpolicy` (``offpolicy`` and the bandit commands) and
:mod:`.experiment_report` (``report``: an HTML or Markdown report)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    from . import experiment_files, experiment_report, experiment_store, offpolicy

    experiment = typer.Typer(
        help="Experiments: plan the sample size, analyse results (sequentially by "
             "default), run stored experiments and bandits, record decisions.",
        no_args_is_help=True)
    experiment_files.register(experiment)
    experiment_store.register(experiment)
    offpolicy.register_bandit(experiment)
    experiment_report.register(experiment)
    app.add_typer(experiment, name="experiment")
    offpolicy.register(app)
