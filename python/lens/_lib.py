"""Loading liblens.so and the C prototypes the module calls (ctypes; no compiled extension).

Where the library comes from, first match wins:
  1. the environment variable LENS_LIBRARY: the file itself, or a folder holding liblens.so;
  2. liblens.so beside this file (what `pip install ./python` copies in when build/liblens.so exists);
  3. build/liblens.so of the source tree this package sits in (python/lens -> ../../build);
  4. the system's loader: `liblens.so` on LD_LIBRARY_PATH or in the ldconfig cache
     (for example after `make install`, which puts it in $(PREFIX)/lib).
"""
import ctypes
import ctypes.util
import os
import sys

try:
    import numpy as np
except ImportError as e:  # a python without NumPy: say which one and how to get it
    raise ImportError(f"the lens module needs NumPy, which {sys.executable} does not have: install it "
                      f"(Debian/Ubuntu: apt-get install python3-numpy, for /usr/bin/python3; "
                      f"else {sys.executable} -m pip install numpy)") from e

__all__ = ["LensError", "lib", "library_path", "check", "as_f32", "ERROR_NAMES"]

# lensnet.h's LENSNET_RESULTS, in order.
ERROR_NAMES = ["ok", "out of memory", "file could not be opened, read or written", "malformed file or text",
               "valid but unsupported feature", "tensor shapes do not match", "invalid argument",
               "invalid architecture description", "weights missing, extra or of the wrong shape",
               "size exceeds the configured limits", "training diverged (the loss became NaN)"]


class LensError(Exception):
    """A failure reported by the library: `message` is its sentence (lensnet_error), `code` the
    lensnet_result number and `reason` that code's meaning."""

    def __init__(self, message, code=6):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else "error"


class Error(ctypes.Structure):
    """lensnet_error: a result code and a sentence naming the problem."""
    _fields_ = [("result", ctypes.c_int), ("message", ctypes.c_char * 320)]


class Tensor(ctypes.Structure):
    """lensnet_tensor: dense float32 in C order."""
    _fields_ = [("ndim", ctypes.c_int), ("shape", ctypes.c_size_t * 8), ("data", ctypes.POINTER(ctypes.c_float))]


PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_double, ctypes.c_double,
                            ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double,
                            ctypes.c_double, ctypes.c_int)


def _candidates():
    env = os.environ.get("LENS_LIBRARY")
    if env:
        yield os.path.join(env, "liblens.so") if os.path.isdir(env) else env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "liblens.so")
    yield os.path.normpath(os.path.join(here, "..", "..", "build", "liblens.so"))
    found = ctypes.util.find_library("lens")
    yield found or "liblens.so"


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (absent)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("lens: cannot load liblens.so; build it with `make shared` in the lens source tree, or set "
                      "LENS_LIBRARY to its path. Tried: " + "; ".join(tried))


lib, library_path = _load()

_P = ctypes.c_void_p
_S = ctypes.c_size_t
_I = ctypes.c_int
_D = ctypes.c_double
_F = ctypes.c_float
_C = ctypes.c_char_p
_U64 = ctypes.c_ulonglong
_E = ctypes.POINTER(Error)
_SP = ctypes.POINTER(ctypes.c_size_t)
_FP = ctypes.POINTER(ctypes.c_float)


def _proto(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_proto("liblens_version", _C)
_proto("liblens_has_png", _I)
_proto("lensnet_model_load", _I, _C, ctypes.POINTER(_P), _E)
_proto("lensnet_model_free", None, _P)
_proto("lensnet_model_save", _I, _P, _C, _E)
_proto("lensnet_model_meta", _C, _P, _C)
_proto("lensnet_model_set_meta", _I, _P, _C, _C)
_proto("lensnet_model_class_index", _I, _P, _C, _SP, _E)
_proto("lensnet_model_class_name", _I, _P, _S, ctypes.c_char_p, _S, _E)
_proto("lensnet_model_band_name", _I, _P, _S, ctypes.c_char_p, _S, _E)
_proto("lensnet_model_pixel_scale", _I, _P, ctypes.POINTER(_D), _E)
_proto("lensnet_model_preprocess", _I, _P, ctypes.POINTER(_I), ctypes.POINTER(_C), _E)
_proto("lensnet_model_parameter_count", _S, _P)
_proto("lensnet_model_forward", _I, _P, _S, _P, _P, _P, _E)
_proto("lensnet_npy_read", _I, _C, ctypes.POINTER(Tensor), _E)
_proto("lensnet_fits_read", _I, _C, _I, ctypes.POINTER(Tensor), _E)
_proto("lensnet_fits_band_slots", _I, _P, ctypes.POINTER(_C), _S, _I, _SP, ctypes.POINTER(_I), _E)
_proto("lensnet_fits_cube_band_slots", _I, _P, _C, _I, _S, _SP, ctypes.POINTER(_I), _E)
_proto("lensnet_band_pick", _I, _P, _C, _S, _SP, ctypes.POINTER(_I), _E)
_proto("lensnet_tensor_free", None, ctypes.POINTER(Tensor))
_proto("lensviz_default_layer", _I, _P, _I, _SP, _E)
_proto("lenssim_label_csv_header", _C)
_proto("liblens_model_shape", None, _P, _SP)
_proto("liblens_model_param_at", _I, _P, _S, ctypes.POINTER(_C), _SP, ctypes.POINTER(_I), _SP, _SP, ctypes.POINTER(_I))
_proto("liblens_model_values", _FP, _P, _SP)
_proto("liblens_model_meta_at", _I, _P, _S, ctypes.POINTER(_C), ctypes.POINTER(_C))
_proto("liblens_model_layer_at", _I, _P, _S, ctypes.POINTER(_C), ctypes.c_char_p, _S)
_proto("liblens_model_new", _I, _C, _I, _I, _I, _U64, ctypes.POINTER(_P), _E)
_proto("liblens_prepare", _I, _P, _P, _S, _S, _S, _S, _SP, _S, _I, _I, _P, _SP, _E)
_proto("liblens_predict", _I, _P, _P, _S, _S, _S, _S, _SP, _S, _I, _I, _I, _P, _P, _SP, _E)
_proto("liblens_regress", _I, _P, _P, _S, _P, _P, _SP, _E)
_proto("liblens_explain", _I, _P, _C, _P, _I, ctypes.c_long, _S, _S, _F, _S, _S, _F, _U64, _P, _S, _SP, ctypes.POINTER(_I),
       ctypes.POINTER(ctypes.c_long), ctypes.POINTER(_D), _E)
_proto("liblens_map_on_image", _I, _P, _C, ctypes.c_long, _S, _S, _P, _S, _S, _I, _P, _P, _E)
_proto("liblens_asinh", None, _P, _S, _S, _S, _F, _P, _S, _S)
_proto("liblens_render_map", _I, _P, _S, _S, _C, _F, _F, _I, _P, _S, _S, _E)
_proto("liblens_overlay", _I, _P, _S, _S, _P, _S, _S, _C, _F, _F, _F, _E)
_proto("liblens_png_write", _I, _C, _P, _S, _S, _E)
_proto("liblens_render", _I, _C, _S, _C, _U64, _I, _P, _S, _SP, _E)
_proto("liblens_sim_open", _I, _C, _C, _D, _I, _I, _U64, ctypes.POINTER(_P), _SP, ctypes.POINTER(_D), _E)
_proto("liblens_sim_class_names", _C, _P)
_proto("liblens_sim_sample", _I, _P, _U64, _S, _P, ctypes.c_char_p, _S, _E)
_proto("liblens_sim_close", None, _P)
_proto("liblens_fit_new", _P)
_proto("liblens_fit_free", None, _P)
_proto("liblens_fit_set", _I, _P, _C, _C, _E)
_proto("liblens_fit_get", _I, _P, _C, ctypes.c_char_p, _S)
_proto("liblens_fit_setting_at", _C, _S, ctypes.POINTER(_C))
_proto("liblens_fit_run", _I, _P, _P, _P, _S, _S, _S, _S, _P, _S, _C, _C, PROGRESS, _P, _I, _E)


def check(result, err):
    """Raises LensError with the library's message when result is not LENSNET_OK."""
    if result != 0:
        message = err.message.decode("utf-8", "replace") or (ERROR_NAMES[result] if 0 <= result < len(ERROR_NAMES) else str(result))
        raise LensError(message, result)


def as_f32(x, name="array"):
    """x as a C-contiguous float32 array: x itself when it already is one (no copy), else converted once."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise LensError("%s: expected numbers, got an array of %s" % (name, a.dtype), 6)
    return np.ascontiguousarray(a, dtype=np.float32)


def ptr(a):
    """The address of a NumPy array's data, for a void * argument."""
    return ctypes.c_void_p(a.ctypes.data) if a is not None else None


def encode(text):
    return None if text is None else os.fsencode(text) if not isinstance(text, bytes) else text
