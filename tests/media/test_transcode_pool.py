"""Per-node transcoding capacity and the codec registry."""

from __future__ import annotations

import pytest

from sbc.media.transcode import (
    G722,
    TRANSCODABLE,
    LibOpus,
    Opus,
    Pcma,
    Pcmu,
    TranscodePool,
    create_codec,
    create_transcoder,
    libopus_available,
)

FAST_OPUS = LibOpus if libopus_available() else Opus


def test_pool_refuses_past_capacity_and_frees_on_release() -> None:
    pool = TranscodePool(2)
    assert pool.acquire("call-1")
    assert pool.acquire("call-2")
    assert not pool.acquire("call-3")
    assert (pool.in_use, pool.available, pool.refused) == (2, 0, 1)
    pool.release("call-1")
    assert pool.acquire("call-3")
    assert pool.in_use == 2


def test_pool_admits_the_same_session_once() -> None:
    pool = TranscodePool(1)
    assert pool.acquire("call-1")
    assert pool.acquire("call-1")  # a re-INVITE of the same call takes no second slot
    assert pool.in_use == 1
    pool.release("call-1")
    pool.release("call-1")  # harmless
    pool.release("never-admitted")
    assert (pool.in_use, pool.available) == (0, 1)


def test_pool_of_zero_refuses_everything() -> None:
    pool = TranscodePool(0)
    assert not pool.acquire("call-1")
    assert pool.available == 0


def test_pool_shrinks_without_dropping_running_sessions() -> None:
    pool = TranscodePool(3)
    for key in ("a", "b", "c"):
        assert pool.acquire(key)
    pool.resize(1)
    assert pool.in_use == 3
    assert pool.available == 0
    pool.release("a")
    pool.release("b")
    assert not pool.acquire("d")  # still at the new limit with "c"
    pool.release("c")
    assert pool.acquire("d")


def test_pool_rejects_negative_capacity() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        TranscodePool(-1)
    with pytest.raises(ValueError, match="max_sessions"):
        TranscodePool(1).resize(-1)


@pytest.mark.parametrize(
    ("name", "kind", "clock", "rate"),
    [
        ("PCMU", Pcmu, 8000, 8000),
        ("pcma", Pcma, 8000, 8000),
        ("G722", G722, 8000, 16000),
        ("opus", FAST_OPUS, 48000, 48000),
    ],
)
def test_registry_makes_codecs_by_rtpmap_name(
    name: str, kind: type[object], clock: int, rate: int
) -> None:
    codec = create_codec(name)
    assert isinstance(codec, kind)
    assert (codec.clock_rate, codec.sample_rate, codec.channels) == (clock, rate, 1)
    assert name.lower() in TRANSCODABLE


def test_registry_reads_opus_fmtp_and_refuses_the_rest() -> None:
    codec = create_codec("OPUS", 40, {"maxaveragebitrate": "20000"})
    assert isinstance(codec, FAST_OPUS)
    assert codec.ptime_ms == 40
    with pytest.raises(ValueError, match="cannot transcode"):
        create_codec("G729")
    with pytest.raises(ValueError, match="bitrate"):
        create_codec("opus", 20, {"maxaveragebitrate": "999999"})


def test_transcoder_runs_opus_at_the_other_legs_rate() -> None:
    narrow = create_transcoder("PCMU", "opus")
    assert (narrow.src.sample_rate, narrow.dst.sample_rate, narrow.dst.clock_rate) == (
        8000,
        8000,
        48000,
    )
    wide = create_transcoder("opus", "G722", dst_fmtp={})
    assert (wide.src.sample_rate, wide.dst.sample_rate, wide.dst.clock_rate) == (16000, 16000, 8000)
    with pytest.raises(ValueError, match="ptime"):
        create_transcoder("PCMU", "opus", 20, 30)


def test_libopus_is_found_here() -> None:
    """PyAV's wheel bundles libopus; if this fails, Opus falls back to the slower path."""
    assert libopus_available()
