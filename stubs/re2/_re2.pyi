# The pybind11 binding under google-re2's re2 module (re2/_re2*.so): the calls
# sbc.policy.regex makes, typed as the binding's docstrings give them.

import enum

class Error(Exception): ...

class RE2:
    class Options:
        max_mem: int
        log_errors: bool
        never_capture: bool
        case_sensitive: bool

    class Anchor(enum.Enum):
        UNANCHORED = 0
        ANCHOR_START = 1
        ANCHOR_BOTH = 2

    def __init__(self, pattern: bytes, options: RE2.Options) -> None: ...
    def ok(self) -> bool: ...
    def error(self) -> bytes: ...
    def NumberOfCapturingGroups(self) -> int: ...  # noqa: N802 (the binding's names)
    def NamedCapturingGroups(self) -> list[tuple[bytes, int]]: ...  # noqa: N802
    def Match(  # noqa: N802
        self, anchor: RE2.Anchor, text: bytes, pos: int, endpos: int
    ) -> list[tuple[int, int]]: ...
