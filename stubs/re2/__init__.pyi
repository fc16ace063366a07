# Types for the parts of google-re2 (import name ``re2``) that sbc uses; the
# package ships none. Names follow the runtime module (re2/__init__.py).

from re2 import _re2

error = _re2.Error

class Options(_re2.RE2.Options):
    def __init__(self) -> None: ...
