"""Inaudible, keyed watermarks that identify a take, and their detection.

The default backend, :class:`StftWatermark` (``stft-patchwork-v1``), is a keyed multiplicative
spread-spectrum ("patchwork") mark in the STFT domain, after Bender et al., *Techniques for data
hiding* (IBM Systems Journal 1996; patchwork), Cox et al., *Secure spread spectrum watermarking for
multimedia* (IEEE TIP 1997; multiplicative spread spectrum) and Kirovski & Malvar, *Spread-spectrum
watermarking of audio signals* (IEEE TSP 2003; time-frequency chips, log-magnitude correlation,
exhaustive sync search). It is keyed by a deployment secret and runs offline with numpy and soxr.

How it works (``docs/watermark.md`` has the reasons and the measurements):

* Analysis runs at a fixed internal rate (16 kHz, mono mix) so any take rate >= 16 kHz and any
  channel count share one geometry: STFT 512/256, band 500–7000 Hz, cut into cells of 2 frames ×
  8 bins (32 ms × 250 Hz). A block is 64 × 26 cells (2.048 s) and repeats for the whole take.
* The key draws a ±1 chip for every cell of the block and gives each cell a role: a fifth are a
  known sync pattern, the rest carry the 108 coded bits (interleaved across time and frequency).
* Payload: 32 bits + keyed CRC-16 (CCITT, xored with a key-derived mask, so another key's marks
  fail the check) → convolutional code K=7, rate 1/2 (133, 171 octal) with 6 tail bits → 108 bits.
* Embedding scales each cell's STFT bins by ``1 + delta * chip`` in every channel (so the mark
  sits under the music it rides on, and silence stays silent), computed at 16 kHz and resampled
  back to the take's rate, with ``delta`` set per take so the mark is ``snr_db`` below the take.
* Detection cell statistics are log-energies minus their frequency neighbours; the file is folded
  onto the block period (summing all repetitions), every cyclic offset × grid phase is scored
  against the sync pattern, and the best few are Viterbi-decoded and checked against the CRC.
  A cropped file resynchronises because the block is cyclic: any 2 s window holds a rotation of it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from audio.signal import fit_length, resample

PAYLOAD_BITS = 32
CRC_BITS = 16

# Internal analysis geometry (fixed, so marks survive resampling and any take rate works).
FS = 16_000
N_FFT = 512
HOP = 256
BAND_HZ = (500.0, 7000.0)
CELL_FRAMES = 2
CELL_BINS = 8
BLOCK_CELLS = 64  # cells along time in one block: 64 × 2 × 256 / 16 kHz = 2.048 s
SYNC_FRACTION = 0.2

# Convolutional code: K=7, rate 1/2, the NASA/Voyager generators (133, 171 octal).
CONV_K = 7
CONV_POLYS = (0o133, 0o171)

# Decision thresholds (see docs/watermark.md for how they bound false positives).
SYNC_Z_MIN = 3.0  # sync correlation (z-score) a candidate offset needs before it is decoded
MATCH_Z_MIN = 8.0  # z-score of the full re-encoded pattern a decode needs to count as present
CANDIDATES = 4  # best sync offsets that are Viterbi-decoded


@dataclass(frozen=True)
class Detection:
    """What a detector found in one file."""

    present: bool
    confidence: float  # 0..1
    payload: int | None  # the 32-bit payload when present and its check passes
    details: dict[str, float] = field(default_factory=dict)  # JSON-serialisable measures


@runtime_checkable
class Watermarker(Protocol):
    """A watermark backend: ``id`` is recorded in manifests next to the payload."""

    id: str

    def embed(self, audio: np.ndarray, sample_rate: int, payload: int) -> np.ndarray: ...

    def detect(self, audio: np.ndarray, sample_rate: int) -> Detection: ...


# ---------------------------------------------------------------------------------------------
# Payload coding: keyed CRC-16 and a K=7 convolutional code with soft Viterbi decoding.


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF).

    >>> hex(crc16(b"123456789"))
    '0x29b1'
    """
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def int_to_bits(value: int, n: int) -> np.ndarray:
    """Most significant bit first, as uint8 0/1."""
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8)


def bits_to_int(bits: np.ndarray) -> int:
    """Inverse of :func:`int_to_bits`."""
    return int("".join(str(int(b)) for b in bits), 2) if len(bits) else 0


def _parity(x: np.ndarray) -> np.ndarray:
    """Parity of each integer's set bits (0/1)."""
    x = x.astype(np.int64)
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 K=7 convolutional code, terminated with K-1 zero tail bits."""
    padded = np.concatenate([bits.astype(np.int64), np.zeros(CONV_K - 1, np.int64)])
    state = 0
    out = np.empty(2 * len(padded), dtype=np.uint8)
    for i, b in enumerate(padded):
        reg = (int(b) << (CONV_K - 1)) | state
        for j, poly in enumerate(CONV_POLYS):
            out[2 * i + j] = bin(reg & poly).count("1") & 1
        state = reg >> 1
    return out


def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """For each (state, input) the next state and the two expected output bits as ±1."""
    n_states = 1 << (CONV_K - 1)
    states = np.arange(n_states)
    nxt = np.empty((n_states, 2), np.int64)
    outs = np.empty((n_states, 2, 2), np.float64)
    for b in (0, 1):
        reg = (b << (CONV_K - 1)) | states
        nxt[:, b] = reg >> 1
        for j, poly in enumerate(CONV_POLYS):
            outs[:, b, j] = 1.0 - 2.0 * _parity(reg & poly)
    return nxt, outs


_NEXT, _OUTS = _trellis()


def viterbi_decode(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """Soft-decision Viterbi: ``soft`` holds one value per coded bit, positive meaning 0.

    Returns the ``n_bits`` message bits of the terminated path (ending in state 0).
    """
    n_states = _NEXT.shape[0]
    half = n_states // 2
    steps = len(soft) // 2
    # Next state n = (bit << 5) | (state >> 1): its two predecessors differ in the lowest bit.
    nxt = np.arange(n_states)
    bit = nxt // half
    preds = np.stack([((nxt % half) << 1), ((nxt % half) << 1) | 1], axis=1)
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    back = np.empty((steps, n_states), np.int64)
    for t in range(steps):
        branch = _OUTS[:, :, 0] * soft[2 * t] + _OUTS[:, :, 1] * soft[2 * t + 1]
        cand = metric[preds] + branch[preds, bit[:, None]]
        choice = np.argmax(cand, axis=1)
        back[t] = preds[nxt, choice]
        metric = cand[nxt, choice]
    state = 0
    bits = np.empty(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        bits[t] = state // half
        state = back[t, state]
    return bits[:n_bits]


# ---------------------------------------------------------------------------------------------
# Signal helpers.


def as_2d(audio: np.ndarray) -> np.ndarray:
    """(channels, samples) float32 view of 1-D mono or 2-D audio."""
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        return arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"audio must be 1-D or (channels, samples), got shape {arr.shape}")
    return arr


def _frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """(..., n_frames, N_FFT) strided frames of already padded signals."""
    shape = (*x.shape[:-1], n_frames, N_FFT)
    strides = (*x.strides[:-1], x.strides[-1] * HOP, x.strides[-1])
    return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)


_SQRT_HANN = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
_HANN = (_SQRT_HANN**2).astype(np.float32)
_BIN_LO = round(BAND_HZ[0] * N_FFT / FS)
_N_FCELLS = int((BAND_HZ[1] - BAND_HZ[0]) * N_FFT / FS) // CELL_BINS
_BIN_HI = _BIN_LO + _N_FCELLS * CELL_BINS


def snr_db(original: np.ndarray, marked: np.ndarray) -> float:
    """Signal-to-mark ratio in dB (the mark being ``marked - original``)."""
    o = as_2d(original).astype(np.float64)
    d = as_2d(marked).astype(np.float64) - o
    return float(10 * np.log10(np.sum(o**2) / max(np.sum(d**2), 1e-30)))


# ---------------------------------------------------------------------------------------------
# The default backend.


@dataclass(frozen=True)
class _Pattern:
    """The keyed layout of one block: a chip and a role for each (time cell, frequency cell)."""

    chips: np.ndarray  # (BLOCK_CELLS, n_fcells) ±1 float
    role: np.ndarray  # (BLOCK_CELLS, n_fcells) int: -1 sync, else coded-bit index
    crc_mask: int
    n_coded: int


def _make_pattern(key: bytes) -> _Pattern:
    """Derive the block pattern and the CRC mask from the key (deterministic)."""
    seed = int.from_bytes(hashlib.blake2b(b"stft-patchwork-v1" + key, digest_size=32).digest())
    rng = np.random.Generator(np.random.PCG64(seed))
    shape = (BLOCK_CELLS, _N_FCELLS)
    n_cells = shape[0] * shape[1]
    chips = rng.choice(np.array([-1.0, 1.0]), size=shape)
    n_coded = 2 * (PAYLOAD_BITS + CRC_BITS + CONV_K - 1)
    n_sync = int(n_cells * SYNC_FRACTION)
    order = rng.permutation(n_cells)
    role = np.empty(n_cells, np.int64)
    role[order[:n_sync]] = -1
    # Round-robin over a random permutation: every coded bit gets the same number of cells,
    # scattered over the whole block (time and frequency diversity against crops and notches).
    role[order[n_sync:]] = np.arange(n_cells - n_sync) % n_coded
    crc_mask = int(rng.integers(0, 1 << CRC_BITS))
    return _Pattern(chips, role.reshape(shape), crc_mask, n_coded)


class StftWatermark:
    """Keyed STFT patchwork / spread-spectrum watermark (the default backend).

    ``snr_db`` is the target ratio of take to mark (≥ 35 dB is the imperceptibility target);
    ``weighting`` gives quiet cells a larger relative change than loud ones (``delta_c ∝
    E_c ** -weighting``), and ``max_delta`` caps it (0.5: a cell between +3.5 and -6 dB), so the
    mark stays under the loud cells of the same moment that mask it.
    """

    id = "stft-patchwork-v1"

    def __init__(
        self,
        key: bytes,
        *,
        snr_db: float = 36.0,
        max_delta: float = 0.5,
        weighting: float = 0.5,
    ) -> None:
        if not key:
            raise ValueError("the watermark key must not be empty")
        self.key = bytes(key)
        self.snr_db = snr_db
        self.max_delta = max_delta
        self.weighting = weighting

    @cached_property
    def pattern(self) -> _Pattern:
        return _make_pattern(self.key)

    # --- payload --------------------------------------------------------------------------

    def _check(self, payload: int) -> int:
        return crc16(payload.to_bytes(4, "big")) ^ self.pattern.crc_mask

    def encode_payload(self, payload: int) -> np.ndarray:
        """Payload + keyed CRC → coded bits as ±1 (bit 0 → +1)."""
        if not 0 <= payload < 1 << PAYLOAD_BITS:
            raise ValueError(f"payload must be a {PAYLOAD_BITS}-bit unsigned integer")
        bits = np.concatenate(
            [int_to_bits(payload, PAYLOAD_BITS), int_to_bits(self._check(payload), CRC_BITS)]
        )
        return 1.0 - 2.0 * conv_encode(bits).astype(np.float64)

    def decode_payload(self, soft: np.ndarray) -> int | None:
        """Viterbi-decode soft coded bits; the payload if its keyed CRC checks, else None."""
        bits = viterbi_decode(soft, PAYLOAD_BITS + CRC_BITS)
        payload = bits_to_int(bits[:PAYLOAD_BITS])
        return payload if bits_to_int(bits[PAYLOAD_BITS:]) == self._check(payload) else None

    def cell_chips(self, payload: int) -> np.ndarray:
        """(BLOCK_CELLS, n_fcells) ±1: sync chips, and data chips times their coded bit."""
        p = self.pattern
        coded = self.encode_payload(payload)
        sign = np.where(p.role < 0, 1.0, coded[np.maximum(p.role, 0)])
        return p.chips * sign

    # --- embedding ------------------------------------------------------------------------

    def _cell_gains(self, spec: np.ndarray, budget: float) -> np.ndarray:
        """Per (frame, frequency cell) relative change ``delta_c`` that spends ``budget``.

        ``budget`` is the mark energy allowed in ``spec``'s units. Detection gains the same from
        a given relative change in a quiet cell as in a loud one, but the loud one costs more
        energy, so ``delta_c`` grows as ``(E_c / mean E) ** -weighting`` (capped at
        ``max_delta``), then one scale is bisected so the capped mark spends the budget.
        """
        n_frames = spec.shape[1]
        band = np.abs(spec[:, :, _BIN_LO:_BIN_HI]) ** 2
        cell_e = band.sum(axis=0).reshape(n_frames, _N_FCELLS, CELL_BINS).sum(axis=2)
        ref = float(cell_e.mean()) or 1.0
        shape = np.where(cell_e > 0, (np.maximum(cell_e, 1e-12 * ref) / ref), 1.0)
        shape = shape**-self.weighting
        lo, hi = 0.0, self.max_delta / float(shape.min())
        for _ in range(40):  # spent(scale) grows monotonically: bisection converges
            mid = 0.5 * (lo + hi)
            spent = float(np.sum(np.minimum(mid * shape, self.max_delta) ** 2 * cell_e))
            lo, hi = (mid, hi) if spent < budget else (lo, mid)
        return np.minimum(lo * shape, self.max_delta)

    def _mark16(self, x16: np.ndarray, cells: np.ndarray, budget: float) -> np.ndarray:
        """The mark at 16 kHz: each cell's bins scaled by ``delta_c`` times its ±1 chip."""
        n = x16.shape[-1]
        n_frames = n // HOP + 2
        padded = np.zeros((x16.shape[0], (n_frames + 1) * HOP), np.float32)
        padded[:, HOP : HOP + n] = x16  # frame t covers samples [(t-1)·HOP, (t+1)·HOP)
        spec = np.fft.rfft(_frames(padded, n_frames) * _SQRT_HANN, axis=-1)
        # sqrt-Hann analysis + synthesis at 50 % overlap: time energy = spectral energy / N_FFT
        delta = self._cell_gains(spec, budget * N_FFT)
        t_cell = (np.arange(n_frames) // CELL_FRAMES) % BLOCK_CELLS
        gain = np.zeros((n_frames, N_FFT // 2 + 1), np.float32)
        gain[:, _BIN_LO:_BIN_HI] = np.repeat(cells[t_cell] * delta, CELL_BINS, axis=1)
        frames = np.fft.irfft(spec * gain, n=N_FFT, axis=-1).astype(np.float32) * _SQRT_HANN
        out = np.zeros_like(padded)
        for t in range(2):  # 50 % overlap: even and odd frames never overlap each other
            sel = frames[:, t::2]
            k = sel.shape[1]
            start = t * HOP
            out[:, start : start + k * N_FFT] += sel.reshape(x16.shape[0], -1)
        return out[:, HOP : HOP + n]

    def embed(self, audio: np.ndarray, sample_rate: int, payload: int) -> np.ndarray:
        """Return ``audio`` with the mark carrying ``payload``; same shape and dtype.

        The mark is ``snr_db`` below the take (at most ``max_delta`` relative change per
        cell). It never clips: if the marked peak would exceed the original peak (or full scale
        1.0, whichever is higher), the whole marked take is scaled down to that peak, which
        detection does not mind (its statistics are gain-invariant).
        """
        if sample_rate < FS:
            raise ValueError(f"sample rate must be at least {FS} Hz, got {sample_rate}")
        original = np.asarray(audio)
        x = as_2d(original)
        chips = self.cell_chips(payload)  # validates the payload before any early return
        energy_x = float(np.sum(x.astype(np.float64) ** 2))
        if energy_x <= 0.0:
            return original.astype(np.float32, copy=True)  # silence: nothing to mark
        x16 = resample(x, sample_rate, FS)
        # The budget in 16 kHz samples: energy per second is what must match across rates.
        budget = energy_x * FS / sample_rate * 10 ** (-self.snr_db / 10)
        mark = fit_length(resample(self._mark16(x16, chips, budget), FS, sample_rate), x.shape[1])
        energy_m = float(np.sum(mark.astype(np.float64) ** 2))
        if energy_m > 0 and energy_x / energy_m < 10 ** (self.snr_db / 10):
            # STFT consistency and resampling move the energy a little: never below the target
            mark *= np.float32(math.sqrt(energy_x / energy_m * 10 ** (-self.snr_db / 10)))
        marked = x + mark
        limit = max(1.0, float(np.abs(x).max()))
        peak = float(np.abs(marked).max())
        if peak > limit:
            marked *= np.float32(limit / peak * 0.999)
        marked = marked.astype(np.float32)
        return marked[0] if original.ndim == 1 else marked

    # --- detection ------------------------------------------------------------------------

    def detect(self, audio: np.ndarray, sample_rate: int) -> Detection:
        """Search every block offset for the sync pattern, decode the best ones, check the CRC."""
        if sample_rate < FS:
            raise ValueError(f"sample rate must be at least {FS} Hz, got {sample_rate}")
        x = as_2d(audio)
        mono16 = resample(x.mean(axis=0, keepdims=True), sample_rate, FS)[0]
        best = _absent()
        for sub in (0, HOP // 2):  # half-hop grid phases: a crop lands anywhere in a frame
            stats = cell_statistics(mono16[sub:])
            if stats is None:
                continue
            for phase in range(CELL_FRAMES):
                folded, reps = fold(stats[phase])
                result = self._decode_folded(folded, reps)
                if result.details.get("match_z", -1.0) > best.details.get("match_z", -1.0) or (
                    result.present and not best.present
                ):
                    best = result
                if best.present and best.confidence >= 0.999:
                    return best
        return best

    def _decode_folded(self, folded: np.ndarray, reps: float) -> Detection:
        """Score all cyclic offsets of one folded grid, decode the best candidates."""
        p = self.pattern
        sync = np.where(p.role < 0, p.chips, 0.0)
        # Circular correlation along time: score[q] = Σ sync[j] · folded[(j + q) mod N]
        score = np.real(
            np.fft.ifft(np.conj(np.fft.fft(sync, axis=0)) * np.fft.fft(folded, axis=0), axis=0)
        ).sum(axis=1)
        norm = math.sqrt(float(np.sum(folded**2) * SYNC_FRACTION)) or 1.0
        sync_z = score / norm
        best: Detection | None = None
        for q in np.argsort(sync_z)[::-1][:CANDIDATES]:
            aligned = np.roll(folded, -int(q), axis=0)
            soft = np.bincount(
                np.maximum(p.role, 0).ravel(),
                weights=np.where(p.role >= 0, p.chips * aligned, 0.0).ravel(),
                minlength=p.n_coded,
            )
            payload = self.decode_payload(soft) if sync_z[q] >= SYNC_Z_MIN else None
            match_z = _match_z(self, aligned, payload)
            present = payload is not None and match_z >= MATCH_Z_MIN
            details = {
                "sync_z": round(float(sync_z[q]), 3),
                "match_z": round(match_z, 3),
                "offset_cells": float(q),
                "repetitions": round(reps, 2),
                "coded_bit_error_rate": round(_bit_error_rate(self, soft, payload), 4),
            }
            candidate = Detection(
                present, _confidence(match_z), payload if present else None, details
            )
            if best is None or (candidate.present, match_z) > (
                best.present,
                best.details["match_z"],
            ):
                best = candidate
        return best if best is not None else _absent()


def _absent() -> Detection:
    return Detection(False, 0.0, None, {"sync_z": 0.0, "match_z": -1.0})


def _confidence(match_z: float) -> float:
    """Map the full-pattern z-score to 0..1: 0.5 at the decision threshold, ~1 at 2× it."""
    return float(1.0 / (1.0 + math.exp(-(match_z - MATCH_Z_MIN) * 1.5)))


def _match_z(wm: StftWatermark, aligned: np.ndarray, payload: int | None) -> float:
    """z-score of the whole expected pattern (sync + re-encoded data) against the cells."""
    if payload is None:
        chips = np.where(wm.pattern.role < 0, wm.pattern.chips, 0.0)
    else:
        chips = wm.cell_chips(payload)
    denom = math.sqrt(float(np.sum(np.where(chips != 0, aligned**2, 0.0))))
    return float(np.sum(chips * aligned) / denom) if denom > 0 else 0.0


def _bit_error_rate(wm: StftWatermark, soft: np.ndarray, payload: int | None) -> float:
    """Share of coded bits whose soft value disagrees with the decoded codeword (NaN if none)."""
    if payload is None:
        return 0.5
    coded = wm.encode_payload(payload)
    used = soft != 0
    return float(np.mean(np.sign(soft[used]) != coded[used])) if used.any() else 0.5


def cell_statistics(mono16: np.ndarray) -> np.ndarray | None:
    """Per grid phase, (time cells, frequency cells) of whitened log-energies; None if too short.

    A cell's log energy minus the mean of its frequency neighbours removes the spectral envelope
    and note onsets, which are far louder than the mark; clipping tames transients.
    """
    n_frames = (len(mono16) - N_FFT) // HOP + 1
    if n_frames < 2 * CELL_FRAMES:
        return None
    frames = _frames(np.ascontiguousarray(mono16, np.float32), n_frames)
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)[:, _BIN_LO:_BIN_HI]) ** 2
    band = power.reshape(n_frames, _N_FCELLS, CELL_BINS).sum(axis=2)
    floor = max(float(band.max()) * 1e-9, 1e-20)
    out = []
    for phase in range(CELL_FRAMES):
        usable = (n_frames - phase) // CELL_FRAMES
        cells = band[phase : phase + usable * CELL_FRAMES].reshape(usable, CELL_FRAMES, -1).sum(1)
        log_e = np.log(cells + floor)
        out.append(_whiten(log_e))
    return np.stack([_pad_to(o, max(len(o) for o in out)) for o in out])


def _whiten(log_e: np.ndarray, radius: int = 2) -> np.ndarray:
    """Remove what neighbouring cells predict: time first (sustained notes), then frequency
    (spectral envelope, onsets); then clip at 3 robust deviations (transients)."""
    resid = log_e - _neighbour_mean(log_e, radius, axis=0)
    resid = resid - _neighbour_mean(resid, radius, axis=1)
    scale = float(np.median(np.abs(resid))) * 1.4826 + 1e-9
    return np.clip(resid, -3 * scale, 3 * scale)


def _neighbour_mean(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Mean of up to ``radius`` neighbours on each side along ``axis``, the cell excluded."""
    moved = np.moveaxis(a, axis, 1)
    n = moved.shape[1]
    csum = np.concatenate([np.zeros((moved.shape[0], 1)), np.cumsum(moved, axis=1)], axis=1)
    idx = np.arange(n)
    lo = np.maximum(idx - radius, 0)
    hi = np.minimum(idx + radius + 1, n)
    mean = (csum[:, hi] - csum[:, lo] - moved) / np.maximum(hi - lo - 1, 1)
    return np.moveaxis(mean, 1, axis)


def _pad_to(a: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([a, np.zeros((n - len(a), a.shape[1]))]) if len(a) < n else a


def fold(cells: np.ndarray) -> tuple[np.ndarray, float]:
    """Sum time cells onto one block period (all repetitions of the block reinforce)."""
    n = len(cells)
    reps = math.ceil(n / BLOCK_CELLS)
    padded = np.zeros((reps * BLOCK_CELLS, cells.shape[1]))
    padded[:n] = cells
    return padded.reshape(reps, BLOCK_CELLS, -1).sum(axis=0), n / BLOCK_CELLS


# ---------------------------------------------------------------------------------------------
# AudioSeal (optional backend, local weights only).


class AudioSealWatermark:
    """AudioSeal (San Roman et al., ICML 2024) from local weights; ``audioseal`` is imported lazily.

    AudioSeal carries 16 bits per message. The 32-bit payload is sent as three messages
    that cycle every second: each holds a 2-bit index and 14 data bits, and the 42 data bits are
    the payload plus its CRC-8 (ATM) and 2 zero bits. Detection runs AudioSeal's detector on
    1 s windows, votes each index's bits over the windows that hold a mark, and checks the CRC,
    so a crop or any 3 s of the take still yields the payload. Runs at 16 kHz internally.
    """

    id = "audioseal-v0.2-3x16"
    segment_s = 1.0
    rate = 16_000

    def __init__(self, generator: object, detector: object) -> None:
        self.generator = generator
        self.detector = detector

    @classmethod
    def from_local(cls, path: Path) -> AudioSealWatermark:
        """Load ``generator.pth`` and ``detector.pth`` from a local folder (never from a hub)."""
        try:
            from audioseal import AudioSeal
        except ImportError as err:
            raise RuntimeError(
                "watermark_backend=audioseal needs the 'audioseal' package "
                "(pip install audioseal); the default 'stft' backend needs nothing"
            ) from err
        folder = Path(path)
        gen_file = _find_weight(folder, ("generator", "audioseal_wm"))
        det_file = _find_weight(folder, ("detector", "audioseal_detector"))
        return cls(AudioSeal.load_generator(str(gen_file)), AudioSeal.load_detector(str(det_file)))

    def messages(self, payload: int) -> list[np.ndarray]:
        """The three 16-bit messages (2-bit index + 14 data bits) carrying ``payload``."""
        if not 0 <= payload < 1 << PAYLOAD_BITS:
            raise ValueError(f"payload must be a {PAYLOAD_BITS}-bit unsigned integer")
        data = np.concatenate(
            [
                int_to_bits(payload, PAYLOAD_BITS),
                int_to_bits(crc8(payload.to_bytes(4, "big")), 8),
                np.zeros(2, np.uint8),
            ]
        )
        return [np.concatenate([int_to_bits(i, 2), data[14 * i : 14 * (i + 1)]]) for i in range(3)]

    def embed(self, audio: np.ndarray, sample_rate: int, payload: int) -> np.ndarray:
        """Mark 1 s segments with the cycling messages; same shape/dtype, peak-limited (no clip)."""
        import torch

        original = np.asarray(audio)
        x = as_2d(original)
        x16 = resample(x, sample_rate, self.rate)
        seg = int(self.segment_s * self.rate)
        msgs = self.messages(payload)
        mark16 = np.zeros_like(x16)
        with torch.no_grad():
            for i, start in enumerate(range(0, x16.shape[1], seg)):
                chunk = torch.from_numpy(np.ascontiguousarray(x16[:, start : start + seg]))
                msg = torch.from_numpy(msgs[i % 3].astype(np.int64))[None]
                wm = self.generator.get_watermark(chunk[:, None, :], self.rate, message=msg)
                mark16[:, start : start + seg] = wm[:, 0, :].numpy()
        mark = fit_length(resample(mark16, self.rate, sample_rate), x.shape[1])
        marked = x + mark
        limit = max(1.0, float(np.abs(x).max()))
        peak = float(np.abs(marked).max())
        if peak > limit:
            marked *= np.float32(limit / peak * 0.999)
        marked = marked.astype(np.float32)
        return marked[0] if original.ndim == 1 else marked

    def detect(self, audio: np.ndarray, sample_rate: int) -> Detection:
        """Vote the messages of marked 1 s windows (hop 0.25 s) and check the CRC-8."""
        import torch

        mono = resample(as_2d(audio).mean(axis=0, keepdims=True), sample_rate, self.rate)
        seg = int(self.segment_s * self.rate)
        votes = np.zeros((3, 14))
        probs = []
        with torch.no_grad():
            for start in range(0, max(mono.shape[1] - seg, 0) + 1, seg // 4):
                chunk = torch.from_numpy(np.ascontiguousarray(mono[:, start : start + seg]))
                prob, message = self.detector.detect_watermark(chunk[None], self.rate)
                prob = float(prob)
                probs.append(prob)
                if prob < 0.5:
                    continue
                bits = np.asarray(message).reshape(-1)[:16].astype(int)
                index = bits[0] * 2 + bits[1]
                if index < 3:
                    votes[index] += prob * (2 * bits[2:] - 1)
        details = {"windows": float(len(probs)), "max_prob": max(probs, default=0.0)}
        if not np.all(np.abs(votes).sum(axis=1) > 0):
            return Detection(False, max(probs, default=0.0), None, details)
        data = (votes.reshape(-1) > 0).astype(np.uint8)
        payload = bits_to_int(data[:PAYLOAD_BITS])
        ok = bits_to_int(data[PAYLOAD_BITS : PAYLOAD_BITS + 8]) == crc8(payload.to_bytes(4, "big"))
        return Detection(ok, float(np.mean(probs)) if ok else 0.0, payload if ok else None, details)


def crc8(data: bytes) -> int:
    """CRC-8/ATM (poly 0x07, init 0).

    >>> hex(crc8(b"123456789"))
    '0xf4'
    """
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _find_weight(folder: Path, stems: tuple[str, ...]) -> Path:
    """The first ``<stem>*.pth`` in ``folder``, or a clear error naming what was expected."""
    for stem in stems:
        hits = sorted(folder.glob(f"{stem}*.pth"))
        if hits:
            return hits[0]
    raise FileNotFoundError(
        f"no {' or '.join(s + '*.pth' for s in stems)} in {folder}: AudioSeal weights are "
        "loaded from a local folder only"
    )
