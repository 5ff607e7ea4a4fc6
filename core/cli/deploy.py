"""`outpost deploy` and `outpost rollback`: model versions onto agents."""
from __future__ import annotations

from typing import Annotated

import typer

from core.accuracy import AccuracyThresholds
from core.cli.common import JsonFlag, console, emit, open_catalog, progress_bar
from core.cli.session import cancel_token
from core.errors import InvalidInput
from core.fleet.dispatch import check_compatibility
from core.fleet.dispatch import deploy as deploy_version
from core.fleet.dispatch import rollback as rollback_version
from core.fleet.errors import DeployRefused
from core.fleet.local import LOCAL_AGENT

DEFAULT_ACCURACY = AccuracyThresholds()


def deploy(
    ref: Annotated[str, typer.Argument(help="M@VERSION or M@ALIAS (e.g. pumps@production).")],
    to: Annotated[str, typer.Option("--to", help="Agent name (default: the local agent).")
                  ] = LOCAL_AGENT,
    force: Annotated[bool, typer.Option(
        "--force", help="Deploy even a version flagged by the parity check.")] = False,
    allow_downgrade: Annotated[bool, typer.Option(
        "--allow-downgrade", help="Allow a version older than the agent has seen.")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="Only check the agent's onnxruntime can load the version's opsets; "
        "change nothing (exit 1 if it cannot).")] = False,
    challenger: Annotated[str | None, typer.Option(
        "--challenger", help="M@V2: the bundle also carries it, run in shadow on the agent.")
    ] = None,
    shadow_share: Annotated[float, typer.Option(
        "--shadow-share", help="--challenger: share of requests it runs on (0-1].")] = 0.5,
    to_fleet: Annotated[bool, typer.Option(
        "--to-fleet", help="Staged rollout to every agent (push and hub), wave by wave.")
    ] = False,
    waves: Annotated[str, typer.Option(
        "--waves", help="--to-fleet: cumulative share of agents per wave.")] = "10%,50%,100%",
    max_failures: Annotated[int, typer.Option(
        "--max-failures", help="--to-fleet: failed agents tolerated; one more halts the "
        "rollout and rolls back the agents it switched.")] = 0,
    soak: Annotated[float, typer.Option(
        "--soak", help="--to-fleet: seconds each wave must stay healthy.")] = 60.0,
    offline_timeout: Annotated[float, typer.Option(
        "--offline-timeout", help="--to-fleet: seconds an agent may be unreachable before "
        "it counts as failed (a hub agent: silent, or no outcome that long after its next "
        "poll).")] = 30.0,
    min_labels: Annotated[int, typer.Option(
        "--min-labels", help="--to-fleet: labels needed before live accuracy can fail a "
        "soak.")] = DEFAULT_ACCURACY.min_labels,
    max_accuracy_drop: Annotated[float, typer.Option(
        "--max-accuracy-drop", help="--to-fleet: live accuracy this far below the holdout's "
        "fails the soak.")] = DEFAULT_ACCURACY.max_drop,
    as_json: JsonFlag = False,
) -> None:
    """Push a model version to an agent, which installs, canary-checks and activates it."""
    if to_fleet and challenger is not None:
        raise InvalidInput("--challenger and --to-fleet do not combine: roll out the champion, "
                           "then deploy a challenger bundle to the agents that should shadow it")
    if to_fleet:
        from core.cli.rollout import run_rollout
        from core.fleet.rollout import parse_waves, start_rollout

        plan = parse_waves(waves)
        with open_catalog() as catalog:
            rollout = start_rollout(catalog, ref, waves=plan, max_failures=max_failures,
                                    soak_s=soak, offline_s=offline_timeout,
                                    accuracy=AccuracyThresholds(min_labels, max_accuracy_drop))
        run_rollout(rollout.id, as_json)
        return
    if check:
        with open_catalog() as catalog:
            verdict = check_compatibility(catalog, ref, to)
        if not verdict.ok:
            raise DeployRefused(verdict.text)
        emit({"ref": ref, "agent": to, **verdict.to_dict()}, as_json,
             lambda: console.print(verdict.text))
        return
    with open_catalog() as catalog, progress_bar(not as_json) as progress:
        result = deploy_version(catalog, ref, to, force=force, allow_downgrade=allow_downgrade,
                                progress=progress, cancel=cancel_token(),
                                challenger=challenger, shadow_share=shadow_share)
    emit(result.to_dict(), as_json, lambda: console.print(
        f"{result.model}@{result.version} is {result.status} on {result.agent}"))


def rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    on: Annotated[str, typer.Option("--on", help="Agent name (default: the local agent).")
                  ] = LOCAL_AGENT,
    as_json: JsonFlag = False,
) -> None:
    """Make an agent serve the model version it served before."""
    with open_catalog() as catalog:
        result = rollback_version(catalog, model, on)
    emit(result.to_dict(), as_json, lambda: console.print(
        f"{result.agent} now serves {result.model}@{result.version}"
        if result.status != "pending" else  # a hub agent rolls back on its next poll
        f"rollback of {result.model} on {result.agent} recorded: it happens on its next poll"))


def approve(
    ref: Annotated[str, typer.Argument(help="M@VERSION staged by `outpost model challenge`.")],
    as_json: JsonFlag = False,
) -> None:
    """Approve a staged version: it becomes production (deploy it as usual)."""
    from core.registry.gate import approve as approve_version

    with open_catalog() as catalog:
        doc = approve_version(catalog, ref)
    emit(doc, as_json, lambda: console.print(
        f"{doc['model']}@{doc['version']} is now production"))
