"""``feedbackloop offpolicy`` and ``feedbackloop experiment bandit …``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidInput
from .common import Db, Json, ProjectName, echo_json, key_values, open_store, out

__all__ = ["read_log", "register", "register_bandit"]

Policy = Literal["thompson", "ucb"]
RewardKind = Literal["binary", "mean"]


def _bad(line: int, field: str, message: str) -> InvalidInput:
    return InvalidInput(f"line {line}: {field}: {message}", field=field, line=line)


def _number(value: Any, line: int, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(float(value)):
        raise _bad(line, field, f"must be a finite number, got {value!r}"[:200])
    return float(value)


def _numbers(value: Any, line: int, field: str) -> list[float]:
    if not isinstance(value, list) or not value:
        raise _bad(line, field, "must be a non-empty list of numbers")
    return [_number(v, line, f"{field}[{i}]") for i, v in enumerate(value)]


def read_log(path: Path) -> tuple[dict[str, Any], list[int]]:
    """A JSONL log as arrays (``actions``, ``rewards``, ``propensities``, ``target``,
    ``predicted`` or None) and the line number of every row. Every problem names its line
    and field: propensity 0 or above 1, target not summing to 1, an action out of range,
    lists of unequal length, ``predicted`` on some rows only."""
    actions: list[int] = []
    rewards: list[float] = []
    props: list[float] = []
    targets: list[list[float]] = []
    predicted: list[list[float]] = []
    lines: list[int] = []
    k: int | None = None
    with_pred: bool | None = None
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="file") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise _bad(number, "json", f"not a JSON object ({exc})") from None
            if not isinstance(row, dict):
                raise _bad(number, "json", "each line must be a JSON object")
            for key in ("action", "reward", "propensity", "target"):
                if key not in row:
                    raise _bad(number, key, "missing")
            unknown = set(row) - {"action", "reward", "propensity", "target", "predicted"}
            if unknown:
                raise _bad(number, sorted(unknown)[0], "unknown field (a row has action, "
                           "reward, propensity, target and optionally predicted)")
            action = row["action"]
            if isinstance(action, bool) or not isinstance(action, int):
                raise _bad(number, "action", f"must be an integer index, got {action!r}"[:200])
            reward = _number(row["reward"], number, "reward")
            prop = _number(row["propensity"], number, "propensity")
            if not 0.0 < prop <= 1.0:
                raise _bad(number, "propensity", f"must be in (0, 1], got {prop:g}")
            target = _numbers(row["target"], number, "target")
            if k is None:
                k = len(target)
            elif len(target) != k:
                raise _bad(number, "target", f"has {len(target)} probabilities, earlier rows "
                           f"have {k}")
            if any(t < 0 for t in target):
                raise _bad(number, "target", "probabilities must be >= 0")
            total = math.fsum(target)
            if abs(total - 1.0) > 1e-6:
                raise _bad(number, "target", f"probabilities sum to {total:.6g}, not 1")
            if not 0 <= action < k:
                raise _bad(number, "action", f"{action} is out of range: target lists {k} "
                           f"actions (0 to {k - 1})")
            has = row.get("predicted") is not None
            if with_pred is None:
                with_pred = has
            elif has != with_pred:
                raise _bad(number, "predicted", "present on some rows only: give it on every "
                           "row or on none")
            if has:
                pred = _numbers(row["predicted"], number, "predicted")
                if len(pred) != k:
                    raise _bad(number, "predicted", f"has {len(pred)} values, target has {k}")
                predicted.append(pred)
            actions.append(action)
            rewards.append(reward)
            props.append(prop)
            targets.append(target)
            lines.append(number)
    if not actions:
        raise InvalidInput(f"{path} has no rows", field="file")
    return ({"actions": actions, "rewards": rewards, "propensities": props,
             "target": targets, "predicted": predicted if with_pred else None}, lines)


def _fmt(block: dict[str, Any]) -> str:
    if not block.get("estimable", True):
        return f"skipped: {block['reason']}"
    ci = block.get("ci95")
    interval = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
    return f"{block['estimate']:.4f}{interval}"


def _print(result: dict[str, Any]) -> None:
    console = out()
    head = f"{result['n']:,} rows"
    if "experiment" in result:
        head = f"{escape(result['experiment'])} ({result['kind']}): {head}"
    console.print(f"[bold]{head}[/]; effective sample size "
                  f"{result['effective_sample_size']:,.1f}, largest weight "
                  f"{result['max_weight']:.3g}")
    table = Table("estimator", "value [95 % CI]", "method")
    for key, label in (("ips", "IPS"), ("snips", "SNIPS"), ("dm", "DM"), ("dr", "DR"),
                       ("logged", "logged policy")):
        block = result[key]
        table.add_row(label, escape(_fmt(block)), escape(block.get("method", "")))
    console.print(table)
    boot = result["bootstrap"]
    if boot["resamples"]:
        console.print(f"Intervals: {boot['method']}, {boot['resamples']:,} resamples.")
    for note in result["notes"]:
        console.print(escape(note))


def offpolicy_command(
    file: Annotated[Path | None, typer.Argument(
        metavar="FILE", show_default=False,
        help='JSONL rows {"action": i, "reward": r, "propensity": p, "target": (list: the '
             'probability of each action), "predicted": (list: a reward model\'s prediction '
             "of each action)}; predicted is optional: without it DM and DR are skipped.")
] = None,
    project: Annotated[str | None, typer.Option(
        "--project", "-p", metavar="NAME", show_default=False,
        help="With --experiment: evaluate on a stored log instead of a file.")] = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", "-e", metavar="NAME", show_default=False,
        help="A bandit (its rewarded decisions) or A/B experiment (its exposed units) "
             "of --project.")] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", metavar="ARM=P",
        help="With --experiment: the candidate's probability of an arm; repeat for each "
             "(arms left out get 0; they must sum to 1).")] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", metavar="SIGNAL", show_default=False,
        help="With an A/B experiment: the reward signal (default: its primary metric).")
    ] = None,
    bootstrap: Annotated[int, typer.Option(
        "--bootstrap", "-b", min=0, max=10_000, metavar="N",
        help="Bootstrap resamples for the intervals (0: none).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the bootstrap.")] = 0,
    db: Db = None, json: Json = False,
) -> None:
    """Estimate a candidate policy's value from logged decisions and their propensities:
    IPS, self-normalised IPS, direct method and doubly robust, each with a percentile-
    bootstrap 95 % interval, and the effective sample size (sum w)^2 / sum w^2."""
    stored = project is not None or experiment is not None
    if stored and file is not None:
        raise InvalidInput("give FILE, or --project with --experiment, not both",
                           field="file")
    if stored:
        if project is None or experiment is None:
            raise InvalidInput("--project and --experiment go together", field="experiment")
        if not target:
            raise InvalidInput("--target ARM=P is needed with --experiment", field="target")
        split: dict[str, float] = {}
        for arm, raw in key_values(target, "--target").items():
            try:
                split[arm] = float(raw)
            except ValueError:
                raise InvalidInput(f"--target {arm}={raw}: not a number",
                                   field="target") from None
        from ..experiments.offpolicy import estimate_stored

        with open_store(db) as (_settings, store):
            result = estimate_stored(store, project, experiment, split, metric=metric,
                                     bootstrap=bootstrap, seed=seed)
    else:
        if file is None:
            raise InvalidInput("give a JSONL FILE, or --project and --experiment",
                               field="file")
        if target or metric:
            raise InvalidInput("--target and --metric go with --experiment; a file's rows "
                               "carry their own target", field="target")
        from ..stats.offpolicy import OffPolicyInputError, OffPolicyLog, evaluate

        arrays, lines = read_log(file)
        try:
            log = OffPolicyLog.of(**arrays)
        except OffPolicyInputError as exc:  # read_log checks first; kept as a safety net
            where = f"line {lines[exc.row]}: " if exc.row is not None else ""
            raise InvalidInput(f"{where}{exc}", field=exc.field) from None
        result = evaluate(log, rng=np.random.default_rng(seed), bootstrap=bootstrap)
    if json:
        echo_json(result)
        return
    _print(result)


# -- bandits ------------------------------------------------------------------------------

BanditName = Annotated[str, typer.Argument(metavar="NAME", help="The bandit's name.")]


def _arm(text: str) -> dict[str, Any]:
    name, _sep, version = text.partition("=")
    return {"name": name.strip(), "version": version.strip() or None}


def bandit_create_command(
    name: BanditName, project: ProjectName,
    arm: Annotated[list[str], typer.Option(
        "--arm", "-a", metavar="NAME[=VERSION]",
        help="An arm, optionally served by a model version; repeat (at least 2).")],
    policy: Annotated[Policy, typer.Option(
        "--policy", help="thompson (Thompson sampling) or ucb (UCB1 / UCB1-NORMAL).")
    ] = "thompson",
    reward: Annotated[RewardKind, typer.Option(
        "--reward", help="binary (0/1 rewards) or mean (any number).")] = "binary",
    reward_signal: Annotated[str | None, typer.Option(
        "--reward-signal", metavar="SIGNAL", show_default=False,
        help="The signal the rewards stand for (checked to exist).")] = None,
    floor: Annotated[float | None, typer.Option(
        "--floor", min=0.0, show_default=False,
        help="Exploration floor per arm (default by risk tier: low 0.01, medium 0.05, "
             "high 0.10; never below the tier's, at most 1/arms).")] = None,
    component: Annotated[str | None, typer.Option(
        "--component", metavar="COMPONENT", show_default=False,
        help="Check that every arm's version is a version of this component.")] = None,
    hypothesis: Annotated[str, typer.Option("--hypothesis", help="What you expect.")] = "",
    db: Db = None, json: Json = False,
) -> None:
    """Create a running bandit over model versions or any named arms."""
    from ..experiments.bandits import create_bandit

    with open_store(db) as (_settings, store):
        bandit = create_bandit(store, project, name, arms=[_arm(a) for a in arm],
                               policy=policy, reward_kind=reward,
                               reward_signal=reward_signal, floor=floor,
                               hypothesis=hypothesis, component=component, created_by="cli")
    if json:
        echo_json(bandit.to_dict())
        return
    out().print(f"Bandit [bold]{escape(name)}[/] running: {len(bandit.arms)} arms, "
                f"{bandit.policy}, {bandit.reward_kind} rewards, floor {bandit.floor:g}.")


def bandit_choose_command(
    name: BanditName, project: ProjectName,
    unit: Annotated[str | None, typer.Option(
        "--unit", "-u", metavar="ID", show_default=False,
        help="The unit the decision is for (stored pseudonymised).")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", metavar="JSON", show_default=False,
        help="A JSON object stored with the decision.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Choose an arm and log the decision with its propensity."""
    from ..experiments.bandits import choose

    ctx = None
    if context is not None:
        try:
            ctx = orjson.loads(context)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"--context is not JSON: {exc}", field="context") from None
    with open_store(db) as (settings, store):
        key = settings.pseudonym_key_bytes() if unit is not None else None
        answer = choose(store, project, name, unit_id=unit, context=ctx, pseudonym_key=key)
    if json:
        echo_json(answer)
        return
    out().print(f"decision {answer['decision_id']}: arm {escape(answer['arm'])}"
                + (f" (version {escape(answer['version'])})" if answer["version"] else "")
                + f", propensity {answer['propensity']:.4f}")


def bandit_reward_command(
    name: BanditName,
    decision: Annotated[int, typer.Argument(metavar="DECISION_ID", min=1,
                                            help="The decision's id from choose.")],
    value: Annotated[float, typer.Argument(metavar="REWARD",
                                           help="The reward (0 or 1 for a binary bandit).")],
    project: ProjectName, db: Db = None, json: Json = False,
) -> None:
    """Record the reward of a decision."""
    from ..experiments.bandits import reward

    with open_store(db) as (_settings, store):
        answer = reward(store, project, name, decision, value)
    if json:
        echo_json(answer)
        return
    out().print(f"decision {decision}: reward {value:g} for arm {escape(answer['arm'])} "
                f"(now {answer['n']:,} rewards, mean {answer['mean']:.4f})")


def bandit_status_command(name: BanditName, project: ProjectName, db: Db = None,
                          json: Json = False) -> None:
    """Show a bandit: per arm its decisions, mean reward with a 95 % interval and its
    current probability of being played."""
    from ..experiments.bandits import bandit_status

    with open_store(db) as (_settings, store):
        status = bandit_status(store, project, name)
    if json:
        echo_json(status)
        return
    b = status["bandit"]
    console = out()
    console.print(f"[bold]{escape(b['name'])}[/] ({b['status']}): {status['policy_method']}; "
                  f"floor {b['floor']:g}; {status['decisions']:,} decisions, "
                  f"{status['rewarded']:,} rewarded")
    table = Table("arm", "version", "decisions", "rewards", "mean [95 % CI]", "P(play)")
    for arm in status["arms"]:
        m = arm["mean"]
        if m["estimate"] is None:
            mean = "-"
        else:
            ci = m["ci95"]
            mean = f"{m['estimate']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
        table.add_row(escape(arm["name"]), escape(arm["version"] or "-"),
                      f"{arm['decisions']:,}", f"{arm['n']:,}", mean,
                      f"{arm['probability']:.3f}")
    console.print(table)
    console.print(escape(f"P(play): {status['probability_method']}."))


def register(app: typer.Typer) -> None:
    """Add ``offpolicy`` to the top-level command tree."""
    app.command("offpolicy")(offpolicy_command)


def register_bandit(experiment: typer.Typer) -> None:
    """Add the bandit commands to the ``experiment`` group."""
    bandit = typer.Typer(help="Bandits: create, choose an arm (logged with its propensity), "
                              "reward a decision, status.", no_args_is_help=True)
    bandit.command("create")(bandit_create_command)
    bandit.command("choose")(bandit_choose_command)
    bandit.command("reward")(bandit_reward_command)
    bandit.command("status")(bandit_status_command)
    experiment.add_typer(bandit, name="bandit")
