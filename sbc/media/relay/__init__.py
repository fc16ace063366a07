"""The RTP/RTCP relay behind :class:`sbc.media.control.RelayControl`.

Pure parts (:mod:`.rtp`, :mod:`.stats`, :mod:`.latch`, :mod:`.stun`) take
bytes and ``now``; :mod:`.engine` is the asyncio edge running in one
process; :mod:`.workers` spreads engines over worker processes. Import the
modules themselves: importing this package must not pull the asyncio edge
into the pure ones.
"""
