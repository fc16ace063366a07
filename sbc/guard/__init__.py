"""Request screening (bans, ACLs, scanners, rate limits) and admission control.

Pure runtime objects fed with the current time; their policies come from
``security.yaml`` (:mod:`sbc.policy.security`) and ``admission.yaml``
(:mod:`sbc.policy.admission`).
"""

from sbc.guard.admission import Admission, Rejection
from sbc.guard.bans import Ban
from sbc.guard.guard import ALLOW, DROP, Guard, Verdict
from sbc.guard.tokens import TokenBucket

__all__ = ["ALLOW", "DROP", "Admission", "Ban", "Guard", "Rejection", "TokenBucket", "Verdict"]
