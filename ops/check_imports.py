"""Fail if a pure layer imports asyncio, sockets or the admin stack (DESIGN.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: The edges: the only modules allowed to do I/O (DESIGN.md, STYLE.md rule 1).
#: Everything else under sbc/ is a pure layer, new modules included.
EDGES = (
    "sbc/transport",
    "sbc/app.py",
    "sbc/load.py",
    "sbc/watch.py",
    "sbc/admin/facade.py",
    "sbc/media/relay/engine.py",
    "sbc/media/relay/side.py",
    "sbc/media/relay/slow_path.py",
    "sbc/media/relay/rtcp_relay.py",
    "sbc/media/relay/stun_answer.py",
    "sbc/media/portcheck.py",
    "sbc/media/relay/workers.py",
    "sbc/media/relay/channel.py",
    "sbc/cdr/writer.py",
    "sbc/admin/api.py",
    "sbc/admin/access.py",
    "sbc/admin/problems.py",
    "sbc/admin/routers",
    "sbc/admin/server.py",
    "sbc/kernel/nftables.py",
    "sbc/kernel/netlink.py",
    "sbc/kernel/filter.py",
    "sbc/kernel/runtime.py",
)
FORBIDDEN = (
    "asyncio",
    "socket",
    "selectors",
    "multiprocessing",
    "fastapi",
    "uvicorn",
    "uvloop",
    "sbc.transport",
    "sbc.app",
    "sbc.load",
    "sbc.media.relay.engine",
    "sbc.media.relay.side",
    "sbc.media.relay.slow_path",
    "sbc.media.relay.rtcp_relay",
    "sbc.media.relay.stun_answer",
    "sbc.media.relay.workers",
    "sbc.media.relay.channel",
    "sbc.kernel.nftables",
    "sbc.kernel.netlink",
    "sbc.kernel.filter",
    "sbc.kernel.runtime",
)


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
    for path in sorted((root / "sbc").rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if any(relative == edge or relative.startswith(edge + "/") for edge in EDGES):
            continue
        for line, name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{relative}:{line}: pure layer imports {name}")
    for message in bad:
        print(message)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
