"""What is refused before a version goes to an agent, whichever way it travels."""
from __future__ import annotations

from typing import Any

from core.fleet.errors import DeployRefused
from core.fleet.records import StatusReport


def _domain(name: str) -> str:
    return "" if name == "ai.onnx" else name  # the default domain goes by both names


def check_opset(agent: str, report: StatusReport, model: str, opset: dict[str, int]) -> None:
    """Refuse before pushing if the agent's onnxruntime cannot load the model's opsets."""
    supported = {_domain(d): v for d, v in report.opset_max.items()}
    for domain, needed in sorted((_domain(d), v) for d, v in opset.items()):
        have = supported.get(domain)
        if have is None or needed > have:
            name = domain or "ai.onnx"
            raise DeployRefused(
                f"{model} needs opset {name} {needed}, but agent {agent} (onnxruntime "
                f"{report.onnxruntime}) supports {name} up to {have or 'none'}")


def describe_opsets(opset: dict[str, int]) -> str:
    return ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(opset.items()))


def refuse_flagged(model: str, version: int, flagged: bool, parity: dict[str, Any],
                   force: bool) -> None:
    if flagged and not force:
        detail = ", ".join(f"{k} {v}" for k, v in parity.items()
                           if k in ("label_agreement", "max_abs_diff"))
        raise DeployRefused(
            f"{model}@{version} failed its parity check ({detail or 'flagged'}): "
            "ONNX and the trained model disagree; use --force to deploy it anyway")
