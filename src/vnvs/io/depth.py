"""Depth files: load ``.npy`` / ``.npz`` depth maps with checks, save them atomically.

Depth is ``(T, H, W)`` float32 in scene units, > 0 where valid, with a ``(T, H, W)`` bool validity
mask. The format is recognised from the file's bytes (NumPy ``.npy`` or ``.npz`` zip), not its
name. Accepted ``.npz`` layouts: an array named ``depth`` or ``depths`` (MegaSaM), or a single
array of any name; an optional ``valid`` or ``mask`` array marks valid pixels. Disparity
(``disparity``, ``disp``, ``inverse_depth``) is refused unless asked for by ``key=``: it is not depth.
"""

from __future__ import annotations

import os
import tokenize
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vnvs.errors import DepthError
from vnvs.utils.atomic import atomic_path

_DEPTH_KEYS = ("depth", "depths")
_MASK_KEYS = ("valid", "mask")
_DISPARITY_KEYS = ("disparity", "disp", "inverse_depth", "inv_depth")
_FLOAT16_MAX = 65504.0


@dataclass
class DepthMaps:
    """Per-frame depth with a validity mask."""

    depth: torch.Tensor
    """``(T, H, W)`` float32 in scene units; > 0 where ``valid``, 0 where not."""
    valid: torch.Tensor
    """``(T, H, W)`` bool, True where ``depth`` holds a usable value."""

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.depth.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.depth.shape[1]), int(self.depth.shape[2]))


def _shape_str(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} frames of {shape[1]}x{shape[2]}"


def _pick_arrays(path: Path, names: list[str], key: str | None) -> tuple[str, str | None]:
    """The names of the depth array and of the optional mask array among an ``.npz``'s members."""
    if key is not None:
        if key not in names:
            raise DepthError(f"depth file {path} has no array {key!r} (it has {', '.join(names)})")
        name = key
    else:
        name = next((k for k in _DEPTH_KEYS if k in names), None)
        others = [k for k in names if k not in _MASK_KEYS]
        if name is None and len(others) == 1 and others[0] not in _DISPARITY_KEYS:
            name = others[0]
        if name is None:
            disp = [k for k in names if k in _DISPARITY_KEYS]
            if disp:
                raise DepthError(
                    f"depth file {path} holds {disp[0]!r}, not depth; convert it to depth "
                    f"or pass key={disp[0]!r} to read it as depth anyway"
                )
            raise DepthError(
                f"depth file {path} has no 'depth' or 'depths' array (it has "
                f"{', '.join(names) or 'nothing'}); pass key= to choose one"
            )
    mask_name = next((k for k in _MASK_KEYS if k in names and k != name), None)
    return name, mask_name


def _read_arrays(path: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the depth array and the optional mask array stored in ``path``."""
    head = _read_head(path)
    try:
        if head.startswith(b"\x93NUMPY"):
            if key is not None:
                raise DepthError(f"depth file {path} is a .npy file and has no key {key!r}")
            return np.load(path, allow_pickle=False), None
        if head.startswith(b"PK"):
            with np.load(path, allow_pickle=False) as z:
                name, mask_name = _pick_arrays(path, list(z.files), key)
                return z[name], (z[mask_name] if mask_name else None)
        raise DepthError(f"cannot read depth file {path}: not a NumPy .npy or .npz file")
    except DepthError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, NotImplementedError, tokenize.TokenError, zipfile.BadZipFile) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        if "pickle" in msg:
            msg = "it holds Python objects, not numbers"
        raise DepthError(f"cannot read depth file {path}: {msg}") from None


def _to_3d(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 4 and arr.shape[1] == 1:  # (T, 1, H, W), as torch code saves it
        return arr[:, 0]
    if arr.ndim == 4 and arr.shape[3] == 1:  # (T, H, W, 1)
        return arr[..., 0]
    if arr.ndim == 3:
        return arr
    raise DepthError(f"depth file {path} holds {what} of shape {tuple(arr.shape)}; expected (T, H, W) or (H, W)")


def load_depth(
    path: str | os.PathLike,
    *,
    num_frames: int | None = None,
    size: tuple[int, int] | None = None,
    key: str | None = None,
    allow_invalid: bool = False,
) -> DepthMaps:
    """Load depth maps from a ``.npy`` or ``.npz`` file and check them.

    Args:
        path: ``.npy`` holding ``(T, H, W)`` or ``(H, W)`` (one frame), or ``.npz`` (see module doc).
        num_frames: expected ``T`` (e.g. the video's), checked when given.
        size: expected ``(H, W)``, checked when given.
        key: name of the depth array in an ``.npz``.
        allow_invalid: mark non-finite and non-positive values invalid instead of raising.
    Returns:
        :class:`DepthMaps` with ``depth (T, H, W)`` float32 (0 where invalid) and ``valid (T, H, W)``.
    Raises:
        DepthError: missing/unreadable file, non-numeric data, wrong shape, a frame count or size
            other than expected, or non-finite / non-positive values at pixels not marked invalid.
    """
    path = Path(path)
    arr, mask = _read_arrays(path, key)
    if arr.dtype.kind not in "fiu":
        raise DepthError(f"depth file {path} holds {arr.dtype} values, not numbers")
    arr = _to_3d(arr, path, "depth")
    if num_frames is not None or size is not None:
        exp_t = arr.shape[0] if num_frames is None else int(num_frames)
        exp_hw = tuple(arr.shape[1:]) if size is None else tuple(int(s) for s in size)
        if (exp_t, *exp_hw) != tuple(arr.shape):
            raise DepthError(
                f"depth file {path} holds {_shape_str(arr.shape)} but the video has "
                f"{_shape_str((exp_t, *exp_hw))}"
            )
    return _checked(arr, mask, path, allow_invalid)


def check_aspect(path: str | os.PathLike, size: tuple[int, int], video_size: tuple[int, int]) -> None:
    """Refuse depth maps whose aspect ratio is not the video's (a size that differs is fine).

    Sizes ``(h, w)`` and ``(H, W)`` match when ``|h W - H w| <= max(h, w, H, W)``: their aspect ratios
    agree up to about one pixel of rounding of the height or the width, in the smaller size's pixels
    (360x640 and 1080x1920 fit 720x1280; 368x640 does not).

    Raises:
        DepthError: the aspect ratios differ (one line naming the file and both sizes).
    """
    (h, w), (H, W) = (int(x) for x in size), (int(x) for x in video_size)
    if abs(h * W - H * w) > max(h, w, H, W):
        raise DepthError(f"depth file {path} holds {h}x{w} maps but the video is {H}x{W}: the aspect ratios "
                         "differ")


def _checked(arr: np.ndarray, mask: np.ndarray | None, path: Path, allow_invalid: bool,
             first_frame: int = 0) -> DepthMaps:
    """Validate depth (and mask) arrays of shape ``(T, H, W)`` and convert them to :class:`DepthMaps`."""
    depth = arr.astype(np.float32, copy=False)
    finite = np.isfinite(depth)
    with np.errstate(invalid="ignore"):
        ok = finite & (depth > 0)

    if mask is not None:
        if mask.dtype.kind not in "biuf":
            raise DepthError(f"depth file {path} has a mask of {mask.dtype} values, not booleans")
        mask = _to_3d(mask, path, "a mask")
        if mask.shape != depth.shape:
            raise DepthError(
                f"depth file {path} has a mask of shape {tuple(mask.shape)} but depth of shape {tuple(depth.shape)}"
            )
        valid = mask.astype(bool)
    else:
        valid = np.ones(depth.shape, dtype=bool)

    bad = valid & ~ok
    if bad.any() and not allow_invalid:
        t = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
        fb, ff = bad[t], finite[t]
        kinds = [
            (int((fb & np.isnan(depth[t])).sum()), "NaN"),
            (int((fb & ~ff & ~np.isnan(depth[t])).sum()), "infinite"),
            (int((fb & ff).sum()), "zero or negative"),
        ]
        what = " and ".join(f"{n} {k}" for n, k in kinds if n)
        n_other = int(bad.sum()) - int(fb.sum())
        more = f" (and {n_other} more in later frames)" if n_other else ""
        raise DepthError(
            f"depth file {path} has {what} values in frame {t + first_frame}{more}; store a boolean 'valid' array "
            f"in the .npz that marks them invalid"
        )
    valid &= ok
    depth = np.where(valid, depth, np.float32(0.0)).astype(np.float32, copy=False)
    return DepthMaps(torch.from_numpy(np.ascontiguousarray(depth)), torch.from_numpy(valid))


@dataclass(frozen=True)
class _Span:
    """Where an uncompressed array's data starts in the file, and its dtype."""

    offset: int
    dtype: np.dtype


class DepthReader:
    """A depth file read a range of frames at a time, so memory does not grow with its length.

    Reads the files :func:`load_depth` reads, with the same checks, applied to the frames read.
    ``.npy`` files and uncompressed ``.npz`` members (``np.savez``) are read with plain file reads of
    just the frames asked for (no memory map, whose pages would count as the process's memory); compressed
    members (``np.savez_compressed``) are decompressed as a stream, which is fast when frames are
    read in increasing order (going back restarts the stream).

    Args:
        path: the depth file.
        key: name of the depth array in an ``.npz``.
        allow_invalid: mark non-finite and non-positive values invalid instead of raising.

    Example:
        >>> reader = DepthReader("depth.npz")  # doctest: +SKIP
        >>> maps = reader.read(0, 16)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, key: str | None = None, allow_invalid: bool = False) -> None:
        self.path = Path(path)
        self.allow_invalid = allow_invalid
        self._zip: zipfile.ZipFile | None = None
        self._streams: dict[str, dict] = {}
        try:
            self._open(key)
        except DepthError:
            self.close()
            raise
        except (ValueError, OSError, EOFError, SyntaxError, NotImplementedError, tokenize.TokenError, zipfile.BadZipFile) as e:
            self.close()
            msg = " ".join(str(e).split()) or type(e).__name__
            raise DepthError(f"cannot read depth file {self.path}: {msg}") from None

    def _open(self, key: str | None) -> None:
        head = _read_head(self.path)
        self._depth = self._mask = None
        if head.startswith(b"\x93NUMPY"):
            if key is not None:
                raise DepthError(f"depth file {self.path} is a .npy file and has no key {key!r}")
            with open(self.path, "rb") as f:
                shape, dtype, offset = _npy_header(f, f"depth file {self.path}")
            self._depth = _Span(offset, dtype)
        elif head.startswith(b"PK"):
            self._zip = zipfile.ZipFile(self.path)
            names = [n[:-4] for n in self._zip.namelist() if n.endswith(".npy")]
            name, mask_name = _pick_arrays(self.path, names, key)
            self._depth, shape, dtype = self._member(name)
            if mask_name:
                self._mask, mshape, mdtype = self._member(mask_name)
                if mdtype.kind not in "biuf":
                    raise DepthError(f"depth file {self.path} has a mask of {mdtype} values, not booleans")
                if _shape3(mshape) != _shape3(shape):
                    raise DepthError(f"depth file {self.path} has a mask of shape {tuple(mshape)} but depth of "
                                     f"shape {tuple(shape)}")
        else:
            raise DepthError(f"cannot read depth file {self.path}: not a NumPy .npy or .npz file")
        if dtype.kind not in "fiu":
            raise DepthError(f"depth file {self.path} holds {dtype} values, not numbers")
        self.shape = _shape3(shape, self.path)
        self.num_frames = self.shape[0]
        self.size = (self.shape[1], self.shape[2])

    def _member(self, name: str):
        """A memory map of an uncompressed member, or a streaming reader of a compressed one."""
        assert self._zip is not None
        info = self._zip.getinfo(name + ".npy")
        with self._zip.open(info) as f:
            shape, dtype, header_len = _npy_header(f, f"depth file {self.path}: array {name!r}")
        if info.compress_type == zipfile.ZIP_STORED:
            with open(self.path, "rb") as raw:
                raw.seek(info.header_offset + 26)
                n_name, n_extra = np.frombuffer(raw.read(4), dtype="<u2")
            offset = info.header_offset + 30 + int(n_name) + int(n_extra) + header_len
            return _Span(offset, dtype), shape, dtype
        self._streams[name] = {"info": info, "file": None, "pos": 0, "header": header_len, "dtype": dtype}
        return name, shape, dtype

    def _rows(self, src, start: int, stop: int) -> np.ndarray:
        if isinstance(src, _Span):  # uncompressed: read the bytes of these frames
            frame = self.shape[1] * self.shape[2]
            with open(self.path, "rb") as f:
                f.seek(src.offset + start * frame * src.dtype.itemsize)
                data = np.fromfile(f, dtype=src.dtype, count=(stop - start) * frame)
            if data.size != (stop - start) * frame:
                raise DepthError(f"cannot read depth file {self.path}: the data is truncated")
            return data.reshape(stop - start, *self.shape[1:])
        st = self._streams[src]
        assert self._zip is not None
        frame_bytes = self.shape[1] * self.shape[2] * st["dtype"].itemsize
        if st["file"] is None or st["pos"] > start:
            if st["file"] is not None:
                st["file"].close()
            st["file"] = self._zip.open(st["info"])
            st["file"].read(st["header"])
            st["pos"] = 0
        f = st["file"]
        skip = (start - st["pos"]) * frame_bytes
        while skip > 0:
            got = len(f.read(min(skip, 1 << 24)))
            if got == 0:
                break
            skip -= got
        want = (stop - start) * frame_bytes
        data = f.read(want)
        if len(data) != want:
            raise DepthError(f"cannot read depth file {self.path}: the data is truncated")
        st["pos"] = stop
        return np.frombuffer(data, dtype=st["dtype"]).reshape(stop - start, *self.shape[1:])

    def read(self, start: int, stop: int) -> DepthMaps:
        """Frames ``start:stop`` as :class:`DepthMaps` (checked like :func:`load_depth`)."""
        if not 0 <= start < stop <= self.num_frames:
            raise DepthError(f"depth file {self.path} holds {self.num_frames} frames; frames {start}:{stop} "
                             "were asked for")
        try:
            depth = self._rows(self._depth, start, stop)
            mask = self._rows(self._mask, start, stop) if self._mask is not None else None
        except (ValueError, OSError, EOFError, SyntaxError, NotImplementedError, tokenize.TokenError, zipfile.BadZipFile) as e:
            msg = " ".join(str(e).split()) or type(e).__name__
            raise DepthError(f"cannot read depth file {self.path}: {msg}") from None
        return _checked(np.array(depth), None if mask is None else np.array(mask), self.path,
                        self.allow_invalid, first_frame=start)

    def close(self) -> None:
        for st in self._streams.values():
            if st["file"] is not None:
                st["file"].close()
        self._streams.clear()
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> "DepthReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _npy_header(f, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of the ``.npy`` data starting at ``f``'s position (read up to the data)."""
    major, _ = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if fortran or dtype.hasobject:
        raise DepthError(f"{what} does not hold a C-ordered numeric array")
    return shape, dtype, f.tell()


def _read_head(path: Path) -> bytes:
    """The first bytes of a depth file (its format's magic); one-line errors for missing or empty files."""
    if not path.exists():
        raise DepthError(f"depth file {path} does not exist")
    if path.is_dir():
        raise DepthError(f"depth file {path} is a folder, not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DepthError(f"cannot read depth file {path}: {e.strerror or e}") from None
    if not head:
        raise DepthError(f"cannot read depth file {path}: the file is empty")
    return head


def _shape3(shape, path: Path | None = None) -> tuple[int, int, int]:
    """``(T, H, W)`` of a stored depth shape (the layouts :func:`_to_3d` accepts)."""
    shape = tuple(int(x) for x in shape)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 4 and shape[1] == 1:
        return (shape[0], shape[2], shape[3])
    if len(shape) == 4 and shape[3] == 1:
        return shape[:3]
    if len(shape) == 3:
        return shape
    raise DepthError(f"depth file {path} holds depth of shape {shape}; expected (T, H, W) or (H, W)")


def save_depth(
    path: str | os.PathLike,
    depth,
    valid=None,
    *,
    dtype: str = "float32",
) -> Path:
    """Save depth maps as a compressed ``.npz`` (arrays ``depth`` and, when given, ``valid``); atomic.

    Args:
        path: output file (written in ``.npz`` format whatever its name).
        depth: ``(T, H, W)`` or ``(H, W)``, torch or numpy.
        valid: optional ``(T, H, W)`` bool mask.
        dtype: ``"float32"`` or ``"float16"`` (half the size; ~3 significant digits, max 65504).
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    d = depth.detach().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth)
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3:
        raise ValueError(f"depth must be (T, H, W), got shape {d.shape}")
    if dtype == "float16":
        finite = d[np.isfinite(d)]
        if finite.size and float(np.abs(finite).max()) > _FLOAT16_MAX:
            raise ValueError(f"depth up to {float(np.abs(finite).max()):g} does not fit float16 (max 65504)")
    arrays = {"depth": d.astype(dtype)}
    if valid is not None:
        v = valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else np.asarray(valid)
        v = v.reshape(d.shape) if v.size == d.size else v
        if v.shape != d.shape:
            raise ValueError(f"valid must have the shape of depth {d.shape}, got {v.shape}")
        arrays["valid"] = v.astype(bool)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return Path(path)
