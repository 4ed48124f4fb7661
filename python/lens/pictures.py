"""Pictures with lensviz.h: colour composites, colour-mapped maps, overlays, PNG files."""
import ctypes
import os

import numpy as np

from ._lib import lib, check, as_f32, ptr, encode, Error, LensError

__all__ = ["composite", "colorize", "overlay", "write_png"]


def _size(shape, size):
    """(width, height) of a picture: the image's, size pixels wide (its aspect kept), or (w, h)."""
    if size is None:
        w, h = shape[-1], shape[-2]
    elif isinstance(size, (int, np.integer)):
        w, h = int(size), int(size) * shape[-2] // shape[-1]
    else:
        try:
            w, h = int(size[0]), int(size[1])
        except (TypeError, ValueError, IndexError):
            raise LensError("size takes a width in pixels or (width, height), got %r" % (size,), 6)
    if w < 1 or h < 1 or w * h > (1 << 26):
        raise LensError("size %r makes a %d x %d picture: give 1 to 2^26 pixels in all" % (size, w, h), 6)
    return w, h


def composite(image, size=None, Q=8.0):
    """An RGB picture [height, width, 3] (uint8) of image [bands, h, w] (or [h, w]): Lupton et al.'s
    asinh composite, bands ordered from blue to red (lensviz_asinh_bands; OU-66's J,Y,H,VIS shows VIS
    in red). size: width, or (width, height); default the image's."""
    x = as_f32(image, "image")
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise LensError("composite takes an image [bands, h, w] or [h, w], got %d dimensions" % x.ndim, 5)
    w, h = _size(x.shape, size)
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    lib.liblens_asinh(ptr(x), x.shape[0], x.shape[1], x.shape[2], float(Q), ptr(rgb), w, h)
    return rgb


def colorize(map, size=None, cmap="magma", lo=None, hi=None, smooth=False):
    """A map [h, w] in a colour map (viridis, magma, diverging, gray) as RGB [height, width, 3];
    lo, hi: the range (None: the map's, symmetric about 0 for diverging)."""
    m = as_f32(map, "map")
    if m.ndim != 2:
        raise LensError("colorize takes a map [h, w], got %d dimensions" % m.ndim, 5)
    w, h = _size(m.shape, size)
    rgb, err = np.zeros((h, w, 3), dtype=np.uint8), Error()
    a, b = (0.0, 0.0) if lo is None or hi is None else (float(lo), float(hi))
    check(lib.liblens_render_map(ptr(m), m.shape[0], m.shape[1], encode(cmap), a, b, int(bool(smooth)), ptr(rgb), w, h,
                                 ctypes.byref(err)), err)
    return rgb


def _picture_values(rgb, what):
    """rgb as it is, when its values are pixels 0..255 of integers: nothing is scaled or wrapped."""
    if rgb.dtype.kind in "iu" and rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        raise LensError("%s takes values 0..255, got %d..%d (nothing is scaled: scale the picture to 0..255 first)" %
                        (what, rgb.min(), rgb.max()), 6)
    if rgb.dtype.kind not in "iu":
        raise LensError("%s takes a uint8 picture (values 0..255), got %s (nothing is scaled: for one in [0, 1], "
                        "give (picture * 255).round().astype(np.uint8))" % (what, rgb.dtype), 6)
    return rgb


def overlay(picture, map, cmap="magma", alpha=0.7, lo=None, hi=None):
    """The map [h, w] blended over a copy of picture [height, width, 3] (lensviz_overlay); the picture's
    values are pixels 0..255 (floats and integers outside it raise LensError, as in write_png)."""
    rgb = _picture_values(np.asarray(picture), "overlay")
    rgb = np.array(rgb, dtype=np.uint8, order="C", copy=True)
    m = as_f32(map, "map")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or m.ndim != 2:
        raise LensError("overlay takes a picture [height, width, 3] and a map [h, w]", 5)
    a, b = (0.0, 0.0) if lo is None or hi is None else (float(lo), float(hi))
    err = Error()
    check(lib.liblens_overlay(ptr(rgb), rgb.shape[1], rgb.shape[0], ptr(m), m.shape[0], m.shape[1], encode(cmap), a, b, float(alpha),
                              ctypes.byref(err)), err)
    return rgb


def write_png(path, picture):
    """Writes an RGB picture [height, width, 3] (uint8; or [height, width], grey) as PNG. Nothing is
    scaled: floats (a picture in [0, 1]) and integers outside 0..255 raise LensError."""
    rgb = _picture_values(np.asarray(picture), "write_png")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise LensError("write_png takes a picture [height, width, 3], got shape %s" % (rgb.shape,), 5)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    err = Error()
    check(lib.liblens_png_write(encode(os.fspath(path)), ptr(rgb), rgb.shape[1], rgb.shape[0], ctypes.byref(err)), err)
