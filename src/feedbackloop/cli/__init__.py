"""The ``feedbackloop`` command: a thin layer that parses arguments, calls services and
prints. The command tree is built by :func:`build_app`, never at import time."""

from __future__ import annotations

import typer

from .common import CommandGroup

__all__ = ["build_app", "main"]


def build_app() -> typer.Typer:
    """The command tree (also walked by ``scripts/cli_reference.py`` for docs/cli.md)."""
    from . import access, capture, projects, serve

    app = typer.Typer(
        name="feedbackloop", cls=CommandGroup, no_args_is_help=True,
        add_completion=False, pretty_exceptions_enable=False,
        help="Close the loop between a model in production and the people who judge it.")
    projects.register(app)
    capture.register(app)
    access.register(app)
    serve.register(app)
    from . import scoring; scoring.register(app)  # noqa: E702, I001
    from . import evaluate; evaluate.register(app)  # noqa: E702, I001
    from . import models; models.register(app)  # noqa: E702, I001
    from . import datasets; datasets.register(app)  # noqa: E702, I001
    from . import agreement; agreement.register(app)  # noqa: E702, I001
    from . import annotation; annotation.register(app)  # noqa: E702, I001
    from . import experiments; experiments.register(app)  # noqa: E702, I001
    from . import triage; triage.register(app)  # noqa: E702, I001
    from . import release; release.register(app)  # noqa: E702, I001
    from . import fairness; fairness.register(app)  # noqa: E702, I001
    from . import audit; audit.register(app)  # noqa: E702, I001
    return app


def main() -> None:
    build_app()(prog_name="feedbackloop")
