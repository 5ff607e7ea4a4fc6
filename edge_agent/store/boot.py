"""The agent's boot counter: one more on every start, so ids minted in a boot never repeat."""

from __future__ import annotations

from pathlib import Path

from edge_agent.contract.files import atomic_write

BOOT_FILE = "boot"


def next_boot(agent_dir: Path) -> int:
    """Read DIR/boot, write it back plus one (atomically), return the new value."""
    path = Path(agent_dir) / BOOT_FILE
    try:
        previous = int(path.read_text(encoding="ascii").strip() or 0)
    except FileNotFoundError:
        previous = 0
    except ValueError:
        raise ValueError(f"{path} is corrupt: it must hold one integer") from None
    boot = previous + 1
    atomic_write(path, f"{boot}\n".encode())
    return boot
