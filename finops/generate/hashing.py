"""Counter-based deterministic randomness: splitmix64 hashes, uniforms and categorical picks."""

from __future__ import annotations

import hashlib

import numpy as np

# ---------------------------------------------------------------------------------------------------
# Scalar randomness (building the org, invoice and meter ids).
# ---------------------------------------------------------------------------------------------------

_MASK = (1 << 64) - 1


def _mix_int(x: int) -> int:
    """splitmix64 finaliser on a Python int."""
    x &= _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class _Rand:
    """Scalar deterministic randomness for building the org (not per row)."""

    def __init__(self, seed: int, salt: str) -> None:
        self.state = _mix_int(int.from_bytes(hashlib.blake2b(f"{seed}:{salt}".encode(), digest_size=8).digest(),
                                             "little"))

    def bits(self) -> int:
        self.state = _mix_int(self.state + 0x9E3779B97F4A7C15)
        return self.state

    def random(self) -> float:
        return (self.bits() >> 11) / float(1 << 53)

    def digits(self, n: int) -> str:
        return "".join(str(self.bits() % 10) for _ in range(n))

    def hex(self, n: int, upper: bool = False) -> str:
        s = "".join(f"{self.bits():016x}" for _ in range((n + 15) // 16))[:n]
        return s.upper() if upper else s

    def guid(self) -> str:
        h = self.hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"


# ---------------------------------------------------------------------------------------------------
# Vectorised randomness: every draw is a pure function of (seed, stream, counters).
# ---------------------------------------------------------------------------------------------------

_G = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (a bijection on uint64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, stream: int, a: np.ndarray, b: np.ndarray | int | None = None) -> np.ndarray:
    base = np.uint64(_mix_int(seed * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03 + 1))
    x = _mix(np.asarray(a).astype(np.uint64) * _G + base)
    if b is not None:
        x = _mix(x ^ (np.asarray(b).astype(np.uint64) * _K2))
    return x


def _unif(seed: int, stream: int, a: np.ndarray, b: np.ndarray | int | None = None) -> np.ndarray:
    return (_hash(seed, stream, a, b) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _pick(u: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Categorical draw: ``cum`` holds cumulative probabilities, one row per draw (or one shared row)."""
    if cum.ndim == 1:
        return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
    return (u[:, None] >= cum[:, :-1]).sum(axis=1)


def _cum(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    s = w.sum(axis=-1, keepdims=True)
    c = np.cumsum(np.where(s > 0, w / np.where(s > 0, s, 1), 0), axis=-1)
    c[..., -1] = 1.0
    return c


_MASK40 = np.uint64((1 << 40) - 1)


def _bij40(seed: int, r: np.ndarray) -> np.ndarray:
    """A seed-keyed bijection on 40-bit integers: unique, random-looking short ids for resources."""
    x = (r.astype(np.uint64) + np.uint64(_mix_int(seed + 77) & ((1 << 40) - 1))) & _MASK40
    for mul, shift in ((0x9E3779B97, 20), (0xC2B2AE3D5, 17), (0x165667B19, 21)):
        x = (x * np.uint64(mul)) & _MASK40
        x = x ^ (x >> np.uint64(shift))
    return x


# Hash streams: one per drawn attribute of a resource or of a (resource, period) cell.
_S = {name: i + 1 for i, name in enumerate(
    ("team", "prov", "kind", "sku", "project", "env", "region_home", "region", "zone", "spot", "cover", "tag",
     "tagstyle", "workload", "steady", "size", "growth", "egress", "shared", "credit", "adjust", "use", "use2",
     "spotprice", "noise", "creditpct", "credittype", "adjpct", "adjtype", "id"))}
