"""Reading the toolkit's array formats with the library's readers (lensnet.h)."""
import ctypes
import os

import numpy as np

from ._lib import lib, check, encode, Error, Tensor

__all__ = ["read"]


def read(path, hdu=-1):
    """A .npy file (any numeric dtype, either byte order) or a FITS image (hdu: 0 primary, 1 the first
    extension, ...; -1 the first HDU holding an image) as float32, read and checked by lensnet.h as
    the lens tool reads them: BSCALE/BZERO applied, BLANK pixels as NaN, shape in NumPy order.
    Tile-compressed images (fpack's .fits.fz) and gzipped files (.fits.gz) are read as the image
    they hold."""
    path = os.fspath(path)
    t, err = Tensor(), Error()
    if path.lower().endswith(".npy"):
        check(lib.lensnet_npy_read(encode(path), ctypes.byref(t), ctypes.byref(err)), err)
    else:
        check(lib.lensnet_fits_read(encode(path), int(hdu), ctypes.byref(t), ctypes.byref(err)), err)
    try:
        shape = tuple(t.shape[:t.ndim])
        n = int(np.prod(shape)) if shape else 1
        return np.ctypeslib.as_array(t.data, shape=(n,)).reshape(shape).copy() if n else np.zeros(shape, np.float32)
    finally:
        lib.lensnet_tensor_free(ctypes.byref(t))
