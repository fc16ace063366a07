"""Transaction timer values (RFC 3261 §17 and Table 4 of Appendix A; RFC 6026 §8.4).

Every duration a machine uses comes from one :class:`TimerConfig`; nothing
reads module globals, so tests may shrink T1 without touching code.

    Timer  Value                         Section      Meaning
    T1     500 ms default                §17.1.1.1    RTT estimate
    T2     4 s                           §17.1.2.2    max non-INVITE retransmit interval
    T4     5 s                           §17.1.2.2    max time a message stays in the network
    A      initially T1                  §17.1.1.2    INVITE request retransmit (UDP only)
    B      64*T1                         §17.1.1.2    INVITE transaction timeout
    D      > 32 s UDP, 0 reliable        §17.1.1.2    wait for response retransmits
    E      initially T1, capped at T2    §17.1.2.2    non-INVITE retransmit (UDP only)
    F      64*T1                         §17.1.2.2    non-INVITE transaction timeout
    G      initially T1, capped at T2    §17.2.1      INVITE response retransmit (UDP only)
    H      64*T1                         §17.2.1      wait for ACK receipt
    I      T4 UDP, 0 reliable            §17.2.1      wait for ACK retransmits
    J      64*T1 UDP, 0 reliable         §17.2.2      wait for non-INVITE request retransmits
    K      T4 UDP, 0 reliable            §17.1.2.2    wait for response retransmits
    L      64*T1                         RFC 6026 §8.7 wait for INVITE retransmits (Accepted)
    M      64*T1                         RFC 6026 §8.4 wait for 2xx retransmits (Accepted)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TimerConfig:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    #: Timer D on unreliable transports ("at least 32 seconds", §17.1.1.2).
    d_unreliable: float = 32.0

    @property
    def timer_a(self) -> float:
        return self.t1

    @property
    def timer_b(self) -> float:
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        return 0.0 if reliable else max(self.d_unreliable, 0.0)

    @property
    def timer_e(self) -> float:
        return self.t1

    @property
    def timer_f(self) -> float:
        return 64 * self.t1

    @property
    def timer_g(self) -> float:
        return self.t1

    @property
    def timer_h(self) -> float:
        return 64 * self.t1

    def timer_i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    @property
    def timer_l(self) -> float:
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        return 64 * self.t1

    @property
    def ack_timeout(self) -> float:
        """How long a UAS retransmits a 2xx waiting for the ACK (§13.3.1.4)."""
        return 64 * self.t1

    @property
    def cancel_timeout(self) -> float:
        """How long an INVITE waits for its final response after CANCEL (§9.1)."""
        return 64 * self.t1
