"""The LUT type and its file formats.

Canonical layout: a 256x256 int64 array indexed by the raw input codes ``[a_code, b_code]``.
``operands`` says how codes and values are read:

* ``"unsigned"``: codes are 0..255, values are the unsigned output;
* ``"signed"``: codes are two's complement (code 255 is -1), values are the signed output;
* ``"sign-magnitude"``: codes are the 8-bit magnitudes of a sign-magnitude multiplier, values are the
  output magnitude; the product's sign is the XOR of the operand signs (verified when generated).

Formats: ``.npy`` + ``.json`` sidecar (canonical, keeps all metadata); ``.bin`` 65,536 x uint16
little-endian (EvoApproxLib/TFApprox, index a*256+b); ``.csv`` with header ``A,B,P``, one row per pair,
A-major; ``.txt`` one decimal value per line, A-major.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyapprox import io as pio
from pyapprox.errors import PyapproxError
from pyapprox.lut.sidecar import OPERAND_FORMATS, make_sidecar, read_sidecar

FORMATS = (".npy", ".bin", ".csv", ".txt")
N = 256


#: Tables read without a width (.bin/.csv/.txt, .npy without sidecar) must fit this many bits: an 8x8
#: multiplier's product needs 16, and anything beyond 32 is a corrupt file, not a multiplier.
BARE_MAX_BITS = 32


def value_range(operands: str, out_width: int) -> tuple[int, int]:
    """Smallest and largest product an ``out_width``-bit output holds under an operand format."""
    if operands == "signed":
        return -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    return 0, (1 << out_width) - 1


def code_values(operands: str) -> np.ndarray:
    """The operand value of each code 0..255 under an operand format."""
    codes = np.arange(N, dtype=np.int64)
    return codes - 256 * (codes >= 128) if operands == "signed" else codes


@dataclass
class LUT:
    table: np.ndarray
    operands: str = "unsigned"
    out_width: int = 16
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        t = np.asarray(self.table)
        if t.shape != (N, N):
            raise PyapproxError(f"a LUT must be 256x256, got shape {t.shape}")
        if not np.issubdtype(t.dtype, np.integer):
            raise PyapproxError(f"a LUT must hold integers, got dtype {t.dtype}")
        if self.operands not in OPERAND_FORMATS:
            raise PyapproxError(f"operand format {self.operands!r} is not one of {', '.join(OPERAND_FORMATS)}")
        if isinstance(self.out_width, bool) or not isinstance(self.out_width, (int, np.integer)) \
                or not 1 <= self.out_width <= 62:
            raise PyapproxError(f"LUT output width {self.out_width!r}: expected an integer from 1 to 62 bits")
        self.out_width = int(self.out_width)
        self.table = np.ascontiguousarray(t, dtype=np.int64)
        lo, hi = value_range(self.operands, self.out_width)
        bad = np.argwhere((self.table < lo) | (self.table > hi))
        if bad.size:
            i, j = (int(x) for x in bad[0])
            v = code_values(self.operands)
            where = f"file {self.meta['source']}" if self.meta.get("source") else self.name
            raise PyapproxError(
                f"LUT {where}: product {int(self.table[i, j])} at A={v[i]}, B={v[j]} does not "
                f"fit a {self.out_width}-bit {self.operands} output ({lo}..{hi}); {bad.shape[0]} value(s) out of range"
                + ("; a negative product needs a signed table (--signed)" if self.table[i, j] < 0 else ""))

    @property
    def signed(self) -> bool:
        return self.operands == "signed"

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.meta.get("top") or "lut"

    def digest(self) -> str:
        """Content hash of the arithmetic (table + operand format): what a result depends on."""
        h = hashlib.sha256()
        h.update(self.operands.encode())
        h.update(self.table.tobytes())
        return h.hexdigest()

    def exact(self) -> np.ndarray:
        """The exact product for every code pair under this LUT's operand format."""
        v = code_values(self.operands)
        return np.outer(v, v)

    def is_exact(self) -> bool:
        return bool(np.array_equal(self.table, self.exact()))

    # -- output ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write in the format given by the file extension (atomically)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            sidecar = make_sidecar(self.meta, self.operands, self.out_width, self.digest())
            pio.check_output_path(path.with_suffix(".json"), "LUT sidecar")
            # both files are renamed into place only after both were written in full
            with pio.atomic_path(path) as tmp_npy, pio.atomic_path(path.with_suffix(".json")) as tmp_json:
                with open(tmp_npy, "wb") as f:
                    np.save(f, self.table, allow_pickle=False)
                tmp_json.write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
        elif suffix == ".bin":
            raw = self.table & 0xFFFF
            if self.table.min() < (-32768 if self.signed else 0) or self.table.max() > (32767 if self.signed else 65535):
                raise PyapproxError(f"{path}: values outside 16 bits cannot be written to the uint16 .bin format")
            pio.write_bytes(path, raw.astype("<u2").tobytes())
        elif suffix == ".csv":
            v = code_values(self.operands)
            a, b = np.meshgrid(v, v, indexing="ij")
            buf = io.StringIO()
            buf.write("A,B,P\n")
            np.savetxt(buf, np.stack([a.ravel(), b.ravel(), self.table.ravel()], 1), fmt="%d", delimiter=",")
            pio.write_text(path, buf.getvalue())
        elif suffix == ".txt":
            pio.write_text(path, "\n".join(map(str, self.table.ravel().tolist())) + "\n")
        else:
            raise PyapproxError(f"{path}: unknown LUT format {suffix!r}; use one of {', '.join(FORMATS)}")
        return path

    # -- input ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, operands: str | None = None) -> "LUT":
        """Read a LUT file. ``operands`` overrides/sets the operand format (needed for .bin/.csv/.txt
        of signed tables; .npy files carry it in their sidecar)."""
        path = Path(path)
        if not path.is_file():
            raise PyapproxError(f"LUT file {path}: no such file")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            return _load_npy(path, operands)
        if suffix == ".bin":
            raw = path.read_bytes()
            if len(raw) != 2 * N * N:
                raise PyapproxError(f"LUT file {path}: {len(raw)} bytes, expected {2 * N * N} "
                                    f"(65,536 little-endian uint16 values)")
            t = np.frombuffer(raw, dtype="<u2").astype(np.int64).reshape(N, N)
            ops = operands or "unsigned"
            if ops == "signed":
                t = t - 65536 * (t >= 32768)
            return cls(t, ops, 16, {"source": str(path), "name": path.stem})
        if suffix == ".csv":
            return _load_csv(path, operands)
        if suffix == ".txt":
            return _load_txt(path, operands)
        raise PyapproxError(f"LUT file {path}: unknown format {suffix!r}; expected one of {', '.join(FORMATS)}")


def _width_of(t: np.ndarray, signed: bool, path: Path) -> int:
    """The output width of a table read without one: at least 16 bits, at most :data:`BARE_MAX_BITS`."""
    lo, hi = int(t.min()), int(t.max())
    if signed:
        bits = max(lo.bit_length() if lo < 0 else 0, hi.bit_length()) + 1
    else:
        bits = hi.bit_length()
    if bits > BARE_MAX_BITS:
        i, j = np.unravel_index(int(np.argmax(np.abs(t))), t.shape)
        raise PyapproxError(f"LUT file {path}: product {int(t[i, j])} at codes ({i}, {j}) needs {bits} bits; an 8x8 "
                            f"multiplier's table must fit {BARE_MAX_BITS} bits (a wider output needs the .npy + .json "
                            f"sidecar written by `pyapprox lut gen`)")
    return max(16, bits)


def _bare_operands(t: np.ndarray, operands: str | None) -> str:
    """Operand format of a table read without one: as given, else signed when a product is negative (only a
    two's complement multiplier has negative products), else unsigned."""
    return operands or ("signed" if (t < 0).any() else "unsigned")


def _load_npy(path: Path, operands: str | None) -> LUT:
    try:
        t = pio.load_npy(path)
    except (ValueError, OSError, EOFError) as exc:
        raise PyapproxError(f"LUT file {path}: not a readable .npy array ({exc})") from exc
    if t.shape != (N, N) or not np.issubdtype(t.dtype, np.integer):
        raise PyapproxError(f"LUT file {path}: expected a 256x256 integer array, got {t.dtype} {t.shape}")
    if t.dtype == np.uint64 and int(t.max()) >= 2 ** 63:
        raise PyapproxError(f"LUT file {path}: values of 64 bits are not products of an 8x8 multiplier")
    t = t.astype(np.int64)
    sidecar = path.with_suffix(".json")
    if not sidecar.exists():
        ops = _bare_operands(t, operands)
        return LUT(t, ops, _width_of(t, ops == "signed", path), {"source": str(path), "name": path.stem})
    meta = read_sidecar(sidecar)
    meta.pop("sidecar", None)
    meta.pop("sidecar_digest", None)
    digest = meta.pop("digest")
    ops = operands or meta.pop("operands", "unsigned")
    meta.pop("operands", None)
    width = meta.pop("out_width", None) or _width_of(t, ops == "signed", path)
    meta["source"] = str(path)
    lut = LUT(t, ops, width, meta)
    if operands is None and digest != lut.digest():
        raise PyapproxError(f"LUT file {path}: table does not match the digest in {sidecar.name} "
                            f"(file modified or torn)")
    return lut


def _pairs_to_table(path: Path, a: np.ndarray, b: np.ndarray, p: np.ndarray, operands: str | None,
                    first_row: int) -> LUT:
    signed_values = (a < 0).any() or (b < 0).any()
    ops = operands or ("signed" if signed_values else "unsigned")
    lo = -128 if ops == "signed" else 0
    hi = 127 if ops == "signed" else 255
    bad = np.nonzero((a < lo) | (a > hi) | (b < lo) | (b > hi))[0]
    if bad.size:
        i = bad[0]
        raise PyapproxError(f"LUT file {path}: row {i + first_row} has operand pair ({a[i]}, {b[i]}) outside "
                            f"{lo}..{hi} for {ops} operands")
    idx = (a & 0xFF) * N + (b & 0xFF)
    order = np.argsort(idx, kind="stable")
    sidx = idx[order]
    dup = np.nonzero(sidx[1:] == sidx[:-1])[0]
    if dup.size:
        rows = sorted(order[dup[0]:dup[0] + 2] + first_row)
        k = sidx[dup[0]]
        raise PyapproxError(f"LUT file {path}: duplicate pair (A={a[order[dup[0]]]}, B={b[order[dup[0]]]}) "
                            f"in rows {rows[0]} and {rows[1]}")
    if sidx.size != N * N:
        present = np.zeros(N * N, bool)
        present[sidx] = True
        k = int(np.nonzero(~present)[0][0])
        va, vb = code_values(ops)[k // N], code_values(ops)[k % N]
        raise PyapproxError(f"LUT file {path}: {N * N - sidx.size} of 65,536 pairs missing, first (A={va}, B={vb})")
    t = np.empty(N * N, np.int64)
    t[idx] = p
    t = t.reshape(N, N)
    return LUT(t, ops, _width_of(t, ops == "signed", path), {"source": str(path), "name": path.stem})


_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")


def _int(text: str, path: Path, where: str) -> int:
    """An ASCII decimal integer within int64, else one clear error naming the file and line."""
    t = text.strip()
    if not _INT_TEXT.fullmatch(t) or abs(int(t)) >= 2 ** 62:
        raise PyapproxError(f"LUT file {path}: {where} is not an integer below 2**62: {t[:40]!r}")
    return int(t)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PyapproxError(f"LUT file {path}: not UTF-8 text (byte {exc.start}); expected decimal integers") from None
    except OSError as exc:
        raise PyapproxError(f"LUT file {path}: cannot be read ({exc.strerror})") from None


def _load_csv(path: Path, operands: str | None) -> LUT:
    text = _read_text(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None or [h.strip().upper() for h in header] != ["A", "B", "P"]:
            raise PyapproxError(f"LUT file {path}: first line must be the header A,B,P, got {repr(header)[:60]}")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 3:
                raise PyapproxError(f"LUT file {path}: line {lineno} has {len(row)} fields, expected 3 (A,B,P)")
            if not all(_INT_TEXT.fullmatch(c.strip()) for c in row):
                raise PyapproxError(f"LUT file {path}: line {lineno} is not three integers: {repr(row)[:80]}")
            rows.append(tuple(_int(c, path, f"line {lineno}") for c in row))
            if len(rows) > N * N:
                raise PyapproxError(f"LUT file {path}: more than 65,536 data rows")
    except csv.Error as exc:
        raise PyapproxError(f"LUT file {path}: not a CSV table ({exc})") from None
    if not rows:
        raise PyapproxError(f"LUT file {path}: no data rows")
    arr = np.array(rows, dtype=np.int64)
    return _pairs_to_table(path, arr[:, 0], arr[:, 1], arr[:, 2], operands, first_row=2)


def _load_txt(path: Path, operands: str | None) -> LUT:
    lines = _read_text(path).split()
    if len(lines) != N * N:
        raise PyapproxError(f"LUT file {path}: {len(lines)} values, expected 65,536 (one per line, A-major)")
    for i, s_ in enumerate(lines):
        if not _INT_TEXT.fullmatch(s_):
            raise PyapproxError(f"LUT file {path}: line {i + 1} is not an integer: {s_[:40]!r}")
    t = np.array([_int(s_, path, f"line {i + 1}") for i, s_ in enumerate(lines)], dtype=np.int64).reshape(N, N)
    ops = _bare_operands(t, operands)
    return LUT(t, ops, _width_of(t, ops == "signed", path), {"source": str(path), "name": path.stem})
