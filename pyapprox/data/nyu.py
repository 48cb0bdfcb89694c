"""Loaders for the NYU Depth v2 test set in the formats it is actually distributed in.

* DenseDepth ``nyu_test.zip`` (or a directory holding its members):
  ``eigen_test_rgb.npy`` (654, 480, 640, 3) uint8, ``eigen_test_depth.npy`` (654, 480, 640)
  float32 metres, ``eigen_test_crop.npy`` 4 ints (inclusive [top, bottom, left, right], i.e.
  [20, 459, 24, 615]). Zip members are extracted once, atomically, into a cache directory
  and memory-mapped, so the 1.4 GB of arrays never has to sit in memory.
* sparse-to-dense / FastDepth ``.h5`` folders: every ``*.h5`` under the folder (recursive,
  sorted by path), each with datasets ``rgb`` (3, 480, 640) uint8 CHW and ``depth`` (480, 640)
  float32 metres.

Every dataset has ``len(ds)``, ``ds[i] -> (rgb uint8 [480, 640, 3], depth float32 [480, 640])``,
``name`` (format identifier), ``source`` (the path given) and ``crop`` (half-open Eigen crop
(top, bottom, left, right) for 480x640). :func:`open_nyu` picks the loader from the path.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pyapprox.errors import PyapproxError
from pyapprox.cache import cache_root
from pyapprox.data.crop import EIGEN_CROP
from pyapprox.io import atomic_path, load_npy

__all__ = [
    "NYU_HEIGHT",
    "NYU_WIDTH",
    "RGB_MEMBER",
    "DEPTH_MEMBER",
    "CROP_MEMBER",
    "NyuEigenTest",
    "NyuH5Folder",
    "default_cache_dir",
    "open_nyu",
]

NYU_HEIGHT, NYU_WIDTH = 480, 640
RGB_MEMBER = "eigen_test_rgb.npy"
DEPTH_MEMBER = "eigen_test_depth.npy"
CROP_MEMBER = "eigen_test_crop.npy"

# What zipfile raises for a damaged archive or member: bad headers or CRC, truncated or corrupt deflate data, an
# unsupported zip version or compression (NotImplementedError), encrypted members (RuntimeError), bad fields.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, RuntimeError)

_EXPECTED = (
    f"expected DenseDepth's nyu_test.zip, a directory holding {RGB_MEMBER} and {DEPTH_MEMBER} "
    f"(and optionally {CROP_MEMBER}), or a folder of sparse-to-dense/FastDepth .h5 files"
)


def default_cache_dir() -> Path:
    """The pyapprox cache root (:func:`pyapprox.cache.cache_root`)."""
    return cache_root()


def _index(i: Any, n: int, where: str) -> int:
    try:
        i = int(i)  # accepts numpy integers; rejects slices etc.
    except TypeError:
        raise TypeError(f"{where}: index must be an integer, got {type(i).__name__}") from None
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"{where}: index out of range (valid 0..{n - 1})")
    return i


def _crop_from_array(arr: np.ndarray, where: str) -> tuple[int, int, int, int]:
    """Inclusive [top, bottom, left, right] as stored by DenseDepth -> half-open tuple."""
    arr = np.asarray(arr)
    if arr.shape != (4,) or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise PyapproxError(f"{where}: expected 4 integers [top, bottom, left, right], got shape {arr.shape} dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise PyapproxError(f"{where}: crop values must be integers, got {arr.tolist()}")
    t, b, l, r = (int(v) for v in arr)
    if not (0 <= t <= b < NYU_HEIGHT and 0 <= l <= r < NYU_WIDTH):
        raise PyapproxError(
            f"{where}: crop {[t, b, l, r]} out of range for {NYU_HEIGHT}x{NYU_WIDTH} "
            f"(need 0 <= top <= bottom < {NYU_HEIGHT}, 0 <= left <= right < {NYU_WIDTH})"
        )
    return (t, b + 1, l, r + 1)


class NyuEigenTest:
    """DenseDepth's Eigen test split (654 images), from ``nyu_test.zip`` or a directory of its .npy files.

    Use :meth:`from_zip` / :meth:`from_dir` (or :func:`open_nyu`). Arrays are memory-mapped.
    """

    name = "nyu_depth_v2_eigen_test"

    def __init__(self, rgb: np.ndarray, depth: np.ndarray, crop: tuple[int, int, int, int], source: str,
                 rgb_where: str = RGB_MEMBER, depth_where: str = DEPTH_MEMBER):
        if rgb.ndim != 4 or rgb.shape[1:] != (NYU_HEIGHT, NYU_WIDTH, 3):
            raise PyapproxError(f"{rgb_where}: expected shape (N, {NYU_HEIGHT}, {NYU_WIDTH}, 3), got {rgb.shape}")
        if rgb.dtype != np.uint8:
            raise PyapproxError(f"{rgb_where}: expected dtype uint8, got {rgb.dtype}")
        if depth.ndim != 3 or depth.shape[1:] != (NYU_HEIGHT, NYU_WIDTH):
            raise PyapproxError(f"{depth_where}: expected shape (N, {NYU_HEIGHT}, {NYU_WIDTH}) metres, got {depth.shape}")
        if not np.issubdtype(depth.dtype, np.floating):
            raise PyapproxError(f"{depth_where}: expected dtype float32 (metres), got {depth.dtype}")
        if rgb.shape[0] != depth.shape[0]:
            raise PyapproxError(
                f"{source}: {rgb_where} has {rgb.shape[0]} images but {depth_where} has {depth.shape[0]} depth maps; they must match"
            )
        if rgb.shape[0] == 0:
            raise PyapproxError(f"{source}: {rgb_where} holds no images")
        self.rgb = rgb
        self.depth = depth
        self.crop = crop
        self.source = source

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> "NyuEigenTest":
        path = Path(path)
        rgb_path, depth_path, crop_path = path / RGB_MEMBER, path / DEPTH_MEMBER, path / CROP_MEMBER
        for p in (rgb_path, depth_path):
            if not p.is_file():
                raise PyapproxError(f"{path}: missing {p.name}; {_EXPECTED}")
        rgb = _load_npy_file(rgb_path, str(rgb_path))
        depth = _load_npy_file(depth_path, str(depth_path))
        crop = EIGEN_CROP
        if crop_path.is_file():
            crop = _crop_from_array(_load_npy_file(crop_path, str(crop_path), mmap=False), str(crop_path))
        return cls(rgb, depth, crop, str(path), str(rgb_path), str(depth_path))

    @classmethod
    def from_zip(cls, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> "NyuEigenTest":
        path = Path(path)
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, *_ZIP_ERRORS) as e:
            raise PyapproxError(f"{path}: cannot open as a zip archive ({e}); {_EXPECTED}") from None
        with zf:
            infos = {m: _find_member(zf, m, path) for m in (RGB_MEMBER, DEPTH_MEMBER, CROP_MEMBER)}
            for m in (RGB_MEMBER, DEPTH_MEMBER):
                if infos[m] is None:
                    raise PyapproxError(
                        f"{path}: zip has no member {m} (members: {', '.join(zf.namelist()[:8]) or 'none'}); {_EXPECTED}"
                    )
            cache = _zip_cache_dir(path, cache_dir)
            arrays = {}
            for m in (RGB_MEMBER, DEPTH_MEMBER):
                where = f"{path}:{infos[m].filename}"
                arrays[m] = _extract_npy(zf, infos[m], cache / m, where)
            crop = EIGEN_CROP
            if infos[CROP_MEMBER] is not None:
                where = f"{path}:{infos[CROP_MEMBER].filename}"
                crop = _crop_from_array(_read_small_npy(zf, infos[CROP_MEMBER], where), where)
        return cls(arrays[RGB_MEMBER], arrays[DEPTH_MEMBER], crop, str(path),
                   f"{path}:{infos[RGB_MEMBER].filename}", f"{path}:{infos[DEPTH_MEMBER].filename}")

    # -- dataset protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    def __getitem__(self, i: Any) -> tuple[np.ndarray, np.ndarray]:
        i = _index(i, len(self), f"{self.source}")
        rgb = np.array(self.rgb[i], dtype=np.uint8, copy=True)
        depth = np.array(self.depth[i], dtype=np.float32, copy=True)
        return rgb, depth

    def __repr__(self) -> str:
        return f"NyuEigenTest(source={self.source!r}, n={len(self)}, crop={self.crop})"


def _load_npy_file(path: Path, where: str, mmap: bool = True) -> np.ndarray:
    try:
        return load_npy(path, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as e:
        raise PyapproxError(f"{where}: not a readable .npy array ({e})") from None


def _find_member(zf: zipfile.ZipFile, member: str, path: Path) -> zipfile.ZipInfo | None:
    """The member named ``member`` at the root or inside one folder; ambiguity is an error."""
    hits = [i for i in zf.infolist() if not i.is_dir() and i.filename.rsplit("/", 1)[-1] == member]
    if len(hits) > 1:
        names = ", ".join(i.filename for i in hits)
        raise PyapproxError(f"{path}: zip holds several {member} members ({names}); expected exactly one")
    return hits[0] if hits else None


def _zip_cache_dir(path: Path, cache_dir: str | os.PathLike | None) -> Path:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "nyu"
    return root / f"{path.stem}-{key}"


def _extract_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, where: str) -> np.ndarray:
    """Extract ``info`` to ``dest`` atomically (CRC-checked) unless already there, then memory-map it."""
    if not (dest.is_file() and dest.stat().st_size == info.file_size):
        try:
            with atomic_path(dest) as tmp:
                with zf.open(info) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except _ZIP_ERRORS as e:
            raise PyapproxError(f"{where}: corrupt zip member ({e}); re-download the archive") from None
        except OSError as e:
            raise PyapproxError(f"{where}: cannot extract to cache {dest} ({e})") from None
    try:
        return load_npy(dest, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        dest.unlink(missing_ok=True)
        raise PyapproxError(f"{where}: member is not a readable .npy array ({e})") from None


def _read_small_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    if info.file_size > 1 << 20:
        raise PyapproxError(f"{where}: unexpectedly large ({info.file_size} bytes) for a 4-value crop")
    try:
        data = zf.read(info)
    except (OSError, *_ZIP_ERRORS) as e:
        raise PyapproxError(f"{where}: corrupt zip member ({e}); re-download the archive") from None
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise PyapproxError(f"{where}: member is not a readable .npy array ({e})") from None


class NyuH5Folder:
    """sparse-to-dense / FastDepth NYU folder: every ``*.h5`` below ``path`` (recursive, sorted).

    Files are opened lazily in ``__getitem__``; a corrupt file or one lacking ``rgb``/``depth``
    raises :class:`PyapproxError` naming the file and its index.
    """

    name = "nyu_depth_v2_h5"

    def __init__(self, path: str | os.PathLike):
        root = Path(path)
        if not root.is_dir():
            raise PyapproxError(f"{root}: not a directory; {_EXPECTED}")
        files = sorted(p for p in root.rglob("*.h5") if p.is_file())
        if not files:
            raise PyapproxError(f"{root}: no .h5 files found (searched recursively); {_EXPECTED}")
        tops = {p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1}
        if {"train", "val"} <= tops:
            raise PyapproxError(f"{root}: holds both train/ and val/ .h5 files; point at the val folder (e.g. {root / 'val'})")
        self.files = files
        self.source = str(root)
        self.crop = EIGEN_CROP

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: Any) -> tuple[np.ndarray, np.ndarray]:
        import h5py

        i = _index(i, len(self), self.source)
        f = self.files[i]
        where = f"{f} (index {i})"
        try:
            with h5py.File(f, "r") as h:
                for key in ("rgb", "depth"):
                    if key not in h or not isinstance(h[key], h5py.Dataset):
                        found = ", ".join(sorted(h.keys())) or "nothing"
                        raise PyapproxError(f"{where}: no dataset '{key}' (found: {found}); expected 'rgb' (3,480,640) uint8 and 'depth' (480,640) float32")
                rgb_ds, depth_ds = h["rgb"], h["depth"]
                if rgb_ds.shape != (3, NYU_HEIGHT, NYU_WIDTH) or rgb_ds.dtype != np.uint8:
                    raise PyapproxError(f"{where}: dataset 'rgb' is {rgb_ds.shape} {rgb_ds.dtype}; expected (3, {NYU_HEIGHT}, {NYU_WIDTH}) uint8")
                if depth_ds.shape != (NYU_HEIGHT, NYU_WIDTH) or not np.issubdtype(depth_ds.dtype, np.floating):
                    raise PyapproxError(f"{where}: dataset 'depth' is {depth_ds.shape} {depth_ds.dtype}; expected ({NYU_HEIGHT}, {NYU_WIDTH}) float32")
                rgb = rgb_ds[()]
                depth = depth_ds[()]
        except PyapproxError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise PyapproxError(f"{where}: cannot read as HDF5 ({e})") from None
        return np.ascontiguousarray(rgb.transpose(1, 2, 0)), np.ascontiguousarray(depth, dtype=np.float32)

    def __repr__(self) -> str:
        return f"NyuH5Folder(source={self.source!r}, n={len(self)})"


def open_nyu(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> NyuEigenTest | NyuH5Folder:
    """Open an NYU Depth v2 test set, choosing the loader from what ``path`` is.

    * a zip file -> :meth:`NyuEigenTest.from_zip` (members extracted under ``cache_dir``,
      default :func:`default_cache_dir` ``/ 'nyu'``);
    * a directory holding ``eigen_test_rgb.npy`` -> :meth:`NyuEigenTest.from_dir`;
    * a directory holding ``nyu_test.zip`` (and no .npy files) -> that zip;
    * a directory with ``.h5`` files anywhere below -> :class:`NyuH5Folder`.
    """
    p = Path(path)
    if not p.exists():
        raise PyapproxError(f"{p}: no such file or directory; {_EXPECTED}")
    if p.is_file():
        if zipfile.is_zipfile(p):
            return NyuEigenTest.from_zip(p, cache_dir)
        if p.suffix == ".h5":
            raise PyapproxError(f"{p}: a single .h5 file; pass the folder that holds the .h5 files")
        raise PyapproxError(f"{p}: not a zip archive; {_EXPECTED}")
    if (p / RGB_MEMBER).exists() or (p / DEPTH_MEMBER).exists():
        return NyuEigenTest.from_dir(p)
    if (p / "nyu_test.zip").is_file():
        return NyuEigenTest.from_zip(p / "nyu_test.zip", cache_dir)
    if next(p.rglob("*.h5"), None) is not None:
        return NyuH5Folder(p)
    raise PyapproxError(f"{p}: directory holds neither {RGB_MEMBER} nor .h5 files; {_EXPECTED}")
