"""G.711 µ-law / A-law tables against ITU-T G.711 values and Python's audioop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sbc.media.transcode import Pcma, Pcmu
from sbc.media.transcode.g711 import (
    alaw_to_linear,
    linear_to_alaw,
    linear_to_ulaw,
    ulaw_to_linear,
)


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xFF), (-1, 0x7E), (32767, 0x80), (-32768, 0x00), (8159 * 4, 0x80), (100, 0xF2)],
)
def test_ulaw_encodes_known_values(sample: int, code: int) -> None:
    assert linear_to_ulaw(sample) == code


@pytest.mark.parametrize(
    ("code", "sample"), [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xF2, 104)]
)
def test_ulaw_decodes_known_values(code: int, sample: int) -> None:
    assert ulaw_to_linear(code) == sample


@pytest.mark.parametrize(
    ("sample", "code"), [(0, 0xD5), (-1, 0x55), (32767, 0xAA), (-32768, 0x2A), (8, 0xD5)]
)
def test_alaw_encodes_known_values(sample: int, code: int) -> None:
    assert linear_to_alaw(sample) == code


@pytest.mark.parametrize(("code", "sample"), [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256)])
def test_alaw_decodes_known_values(code: int, sample: int) -> None:
    assert alaw_to_linear(code) == sample


@pytest.mark.parametrize("codec", [Pcmu(), Pcma()], ids=["PCMU", "PCMA"])
def test_every_code_survives_a_round_trip(codec: Pcmu | Pcma) -> None:
    codes = bytes(range(256))
    decoded = codec.decode(codes)
    assert decoded.dtype == np.int16
    assert len(decoded) == 256
    # Re-encoding a decoded value gives back a code that decodes the same
    # (µ-law's 0x7F, "negative zero", becomes 0xFF).
    assert np.array_equal(codec.decode(codec.encode(decoded)), decoded)


@pytest.mark.parametrize("codec", [Pcmu(), Pcma()], ids=["PCMU", "PCMA"])
def test_quantisation_error_is_bounded(codec: Pcmu | Pcma) -> None:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    back = codec.decode(codec.encode(samples.astype(np.int16))).astype(np.int32)
    # The largest G.711 step is 1024 (µ-law top segment) / 1024 (A-law): error under a step,
    # and relative error small for loud samples (logarithmic companding).
    assert np.max(np.abs(back - samples)) <= 1024
    loud = np.abs(samples) > 1000
    assert np.max(np.abs(back - samples)[loud] / np.abs(samples[loud])) < 0.07


def test_tables_match_audioop_where_it_exists() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone in Python 3.13
    samples = np.arange(-32768, 32768, dtype=np.int16)
    raw = samples.tobytes()
    assert Pcmu().encode(samples) == audioop.lin2ulaw(raw, 2)
    assert Pcma().encode(samples) == audioop.lin2alaw(raw, 2)
    codes = bytes(range(256))
    assert Pcmu().decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert Pcma().decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


def test_payload_is_one_byte_per_sample() -> None:
    pcm = np.zeros(160, dtype=np.int16)
    assert Pcmu().encode(pcm) == b"\xff" * 160
    assert Pcma().encode(pcm) == b"\xd5" * 160
