"""Simulations with lenssim.h: scenes in lenstronomy's names (what `lens render` reads) and the
labelled data sets of its presets (what `lens sim` writes)."""
import collections
import csv
import ctypes
import io
import json
import math
import os

import numpy as np

from ._lib import lib, check, encode, ptr, Error, LensError

__all__ = ["scene", "render", "simulate", "Dataset"]

# lenstronomy's kwargs_psf keys -> the scene format's (docs/render.md, "Scene format").
_PSF_KEYS = {"psf_type": "type", "kernel_point_source": "kernel"}


def _entries(models, kwargs, what):
    """[{"type": model, **kwargs}] from lenstronomy's pair of lists (model names, keyword dicts);
    dicts that already hold "type" stand alone."""
    kwargs = list(kwargs or [])
    if models is None:
        models = [None] * len(kwargs)
    models = list(models)
    if len(models) != len(kwargs):
        raise LensError("%s: %d model names but %d keyword dicts" % (what, len(models), len(kwargs)), 6)
    out = []
    for i, (name, kw) in enumerate(zip(models, kwargs)):
        entry = dict(kw)
        if name is not None:
            if "type" in entry and entry["type"] != name:
                raise LensError("%s[%d]: model %r but its dict says type %r" % (what, i, name, entry["type"]), 6)
            entry = dict({"type": name}, **{k: v for k, v in entry.items() if k != "type"})
        elif "type" not in entry:
            raise LensError("%s[%d]: no model name (give the model list, or 'type' in the dict)" % (what, i), 6)
        out.append(entry)
    return out


def scene(num_pix, pixel_scale, supersampling=1, lens_model_list=None, kwargs_lens=None, source_light_model_list=None,
          kwargs_source=None, lens_light_model_list=None, kwargs_lens_light=None, psf=None, kwargs_psf=None, cosmology=None,
          lens_redshift_list=None, z_source=None, z_source_convention=None, source_redshift_list=None, kind=None):
    """A scene as lens render's JSON holds it (docs/render.md), from lenstronomy-style arguments:
    model lists and keyword dicts with lenstronomy's names, e.g.
        lens.scene(80, 0.05, lens_model_list=["SIE", "SHEAR"],
                   kwargs_lens=[{"theta_E": 1.0, "e1": 0.1, "e2": 0.0, "center_x": 0, "center_y": 0},
                                {"gamma1": 0.02, "gamma2": -0.01}],
                   source_light_model_list=["SERSIC_ELLIPSE"], kwargs_source=[{...}])
    psf: {"type": "GAUSSIAN", "fwhm": 0.16} (or kwargs_psf with lenstronomy's psf_type);
    cosmology: {"H0": 70, "Om0": 0.3}; lens_redshift_list, z_source, z_source_convention and
    source_redshift_list make a multi-plane scene. Returns a dict (json.dumps gives the file)."""
    s = {"grid": {"num_pix": int(num_pix), "pixel_scale": float(pixel_scale), "supersampling": int(supersampling)}}
    if kwargs_lens or lens_model_list:
        s["lens"] = _entries(lens_model_list, kwargs_lens, "lens")
    if kwargs_lens_light or lens_light_model_list:
        s["lens_light"] = _entries(lens_light_model_list, kwargs_lens_light, "lens_light")
    if kwargs_source or source_light_model_list:
        s["source_light"] = _entries(source_light_model_list, kwargs_source, "source_light")
    if psf is not None and kwargs_psf is not None:
        raise LensError("give psf or kwargs_psf, not both", 6)
    p = psf if psf is not None else kwargs_psf
    if p is not None:
        s["psf"] = {_PSF_KEYS.get(k, k): v for k, v in dict(p).items()}
    if cosmology is not None:
        s["cosmology"] = dict(cosmology)
    if lens_redshift_list is not None or source_redshift_list is not None:
        mp = {}
        if lens_redshift_list is not None:
            mp["lens_redshifts"] = list(lens_redshift_list)
        if z_source is not None:
            mp["z_source"] = z_source
        if z_source_convention is not None:
            mp["z_source_convention"] = z_source_convention
        if source_redshift_list is not None:
            mp["source_redshifts"] = list(source_redshift_list)
        s["multi_plane"] = mp
    if kind is not None:
        s["kind"] = str(kind)
    return s


def _plain(v):
    """json.dumps's fallback for NumPy numbers and arrays."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError("%r is not a number, text, list or dict" % (v,))


def _read_scene_file(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except IsADirectoryError:
        raise LensError("%s: is a folder, not a file" % path, 2) from None
    except (OSError, UnicodeDecodeError):
        raise LensError("%s: cannot open the scene file" % path, 2) from None


def _non_finite(v, where):
    """The place of the first NaN or infinite number in a scene (JSON has no such numbers), or None."""
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return "%s = %r" % (where, float(v))
    if isinstance(v, dict):
        items = v.items()
    elif isinstance(v, (list, tuple, np.ndarray)):
        items = ((str(k), x) for k, x in enumerate(v.tolist() if isinstance(v, np.ndarray) else v))
    else:
        return None
    for k, x in items:
        bad = _non_finite(x, "%s[%s]" % (where, k) if where else str(k))
        if bad:
            return bad
    return None


def _scene_text(s):
    if isinstance(s, dict):
        bad = _non_finite(s, "")
        if bad:
            raise LensError("the scene holds %s: every number must be finite" % bad, 6)
        return json.dumps(s, default=_plain)
    if isinstance(s, (bytes, str)):
        text = s.decode() if isinstance(s, bytes) else s
        if text.lstrip().startswith("{"):
            return text
        return _read_scene_file(text)
    if isinstance(s, os.PathLike):
        return _read_scene_file(os.fspath(s))
    raise LensError("a scene is a dict, JSON text or the path of a .json file", 6)


def render(scene_or_path=None, band=None, seed=1, double=False, out=None, **scene_kwargs):
    """The image lens render makes of a scene, float32 [num_pix, num_pix] in counts/s per pixel:
    noise-free, or seen through `band` (VIS, NISP_Y, ..., HSC_g, ...) with its noise drawn from
    `seed` (lens render --band B --seed S). The scene: a dict (lens.scene's), JSON text, a .json
    path, or lens.scene's keyword arguments. out: a C-contiguous float32 array to write into."""
    if scene_or_path is None:
        scene_or_path = scene(**scene_kwargs)
    elif scene_kwargs:
        raise LensError("give a scene or lens.scene's keyword arguments, not both", 6)
    text = _scene_text(scene_or_path).encode()
    side, err = ctypes.c_size_t(), Error()
    b = encode(band) if band else None
    check(lib.liblens_render(text, len(text), b, int(seed), int(bool(double)), None, 0, ctypes.byref(side), ctypes.byref(err)), err)
    n = side.value
    if out is None:
        out = np.empty((n, n), dtype=np.float32)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (n, n)):
        raise LensError("out must be a C-contiguous float32 array of shape (%d, %d)" % (n, n), 6)
    check(lib.liblens_render(text, len(text), b, int(seed), int(bool(double)), ptr(out), out.size, ctypes.byref(side),
                             ctypes.byref(err)), err)
    return out


Dataset = collections.namedtuple("Dataset", "images labels classes class_names pixel_scale labels_csv")
Dataset.__doc__ = """What lens.simulate returns: images [N, C, H, W] float32 (lens sim's images.npy),
labels (a list of dicts, one per object: labels.csv's columns, numbers as numbers), classes [N]
(the class of each object), class_names, pixel_scale (arcsec) and labels_csv (the text lens sim
writes as labels.csv)."""


def _number(text):
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v


def simulate(preset="euclid-lensfinding", n=16, seed=1, layout=None, lens_fraction=None, noise_free=False, supersampling=0, first=0):
    """n labelled objects of a population preset (euclid-lensfinding, euclid-compound,
    deeplense-substructure, ensai-modelling; docs/populations.md), as
    `lens sim --preset P --n N --seed S [--layout L] [--lens-fraction F] [--noise-free]` makes them:
    object i depends only on the settings, the seed and i (first: start at object `first`)."""
    if n < 0 or first < 0:
        raise LensError("n and first must not be negative", 6)
    handle, info, scale, err = ctypes.c_void_p(), (ctypes.c_size_t * 4)(), ctypes.c_double(), Error()
    frac = -1.0 if lens_fraction is None else float(lens_fraction)
    check(lib.liblens_sim_open(encode(preset), encode(layout) if layout else None, frac, int(bool(noise_free)), int(supersampling),
                               int(seed), ctypes.byref(handle), info, ctypes.byref(scale), ctypes.byref(err)), err)
    try:
        c, side = info[0], info[1]
        images = np.empty((int(n), c, side, side), dtype=np.float32)
        rows = ctypes.create_string_buffer(1024 * max(int(n), 1) + 1)
        if n:
            check(lib.liblens_sim_sample(handle, int(first), int(n), ptr(images), rows, len(rows), ctypes.byref(err)), err)
        names = lib.liblens_sim_class_names(handle).decode().split(",")
    finally:
        lib.liblens_sim_close(handle)
    text = lib.lenssim_label_csv_header().decode() + rows.value.decode()
    table = list(csv.reader(io.StringIO(text)))
    labels = [{k: _number(v) for k, v in zip(table[0], row)} for row in table[1:]]
    classes = np.array([row["label"] for row in labels], dtype=np.int64)
    return Dataset(images, labels, classes, names, scale.value, text)
