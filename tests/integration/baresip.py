"""baresip (Debian) as a real SIP/SRTP user agent for tests.

baresip runs headless from a temporary config directory: its ``ausine``
module is the microphone (a sine tone; it wants 48 kHz stereo), ``aubridge``
a speaker nobody listens to, and ``sndfile`` writes every decoded stream it
received to ``dump-*-dec.wav`` — what the far end actually got, after its own
SRTP and codec. ``-e /dial`` places the call at start, ``-t`` quits (hanging
up) after a bounded time. Only the process this helper started is ended.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")

_CONFIG = """\
poll_method epoll
sip_listen {ip}:{port}
audio_player aubridge,nowhere
audio_alert aubridge,nowhere
audio_source ausine,{tone_hz}
ausrc_srate 48000
ausrc_channels 2
rtp_ports {rtp_low}-{rtp_high}
module_path {modules}
module g711.so
module ausine.so
module aubridge.so
module sndfile.so
module srtp.so
module dtls_srtp.so
module_app account.so
module_app menu.so
snd_path {dumps}
"""


class Baresip:
    """One baresip process: an account on ``ip:port`` that dials ``target``."""

    def __init__(
        self,
        workdir: Path,
        ip: str,
        port: int,
        *,
        mediaenc: str | None = "srtp-mand",
        codecs: str = "PCMU",
        tone_hz: int = 1000,
        rtp_ports: tuple[int, int] = (42000, 42098),
    ) -> None:
        self.workdir = workdir
        self.config = workdir / "baresip"
        self.dumps = workdir / "dumps"
        self.config.mkdir(parents=True, exist_ok=True)
        self.dumps.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "baresip.log"
        (self.config / "config").write_text(
            _CONFIG.format(
                ip=ip,
                port=port,
                tone_hz=tone_hz,
                rtp_low=rtp_ports[0],
                rtp_high=rtp_ports[1],
                modules=MODULES,
                dumps=self.dumps,
            )
        )
        encryption = f";mediaenc={mediaenc}" if mediaenc else ""
        (self.config / "accounts").write_text(
            f"<sip:caller@{ip}:{port}>;regint=0{encryption};audio_codecs={codecs}\n"
        )
        (self.config / "contacts").write_text("")
        self.proc: subprocess.Popen[bytes] | None = None

    def dial(self, target: str, seconds: int) -> None:
        """Start, call ``target`` at once, hang up and quit after ``seconds``."""
        assert BARESIP is not None
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [BARESIP, "-f", str(self.config), "-e", f"/dial {target}", "-t", str(seconds)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def received_audio(self) -> tuple[np.ndarray, int]:
        """The audio baresip decoded from what it received (mono int16), and its rate."""
        dumps = sorted(self.dumps.glob("dump-*-dec.wav"))
        assert dumps, f"baresip dumped no decoded audio:\n{self.output()}"
        return read_wav(dumps[-1])


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[::channels], rate  # the first channel
