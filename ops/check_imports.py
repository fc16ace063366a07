"""Fail if a pure layer imports asyncio, sockets or the admin stack (DESIGN.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PURE = (
    "sbc/sip",
    "sbc/b2bua",
    "sbc/policy",
    "sbc/media/interface.py",
    "sbc/media/control.py",
    "sbc/media/anchor.py",
    "sbc/media/ports.py",
    "sbc/media/sdp_rewrite.py",
    "sbc/media/stats.py",
    "sbc/media/relay/rtp.py",
    "sbc/media/relay/stats.py",
    "sbc/media/relay/latch.py",
    "sbc/media/relay/stun.py",
)
FORBIDDEN = ("asyncio", "socket", "fastapi", "uvicorn", "uvloop", "sbc.transport", "sbc.app")


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
    return found


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    bad = []
    for entry in PURE:
        target = root / entry
        files = [target] if target.is_file() else sorted(target.rglob("*.py"))
        for path in files:
            for line, name in imports(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    bad.append(f"{path.relative_to(root)}:{line}: pure layer imports {name}")
    for message in bad:
        print(message)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
