"""Models: loading, predictions (what `lens predict` computes) and explanations (`lens explain`)."""
import collections
import ctypes
import os
import warnings

import numpy as np

from ._lib import lib, check, as_f32, ptr, encode, Error, LensError
from .files import read

__all__ = ["Model", "Prediction", "Regression", "METHODS"]

# What Model.explain computes, by lens explain's names.
METHODS = ("occlusion", "saliency", "guided", "gradcam", "guided-gradcam", "ig", "smoothgrad")

Regression = collections.namedtuple("Regression", "mean sigma names inputs")
Regression.__doc__ = """What Model.regress returns: mean and sigma [N, targets] (float64, physical units, as
lens predict's CSV has them for a regression model without --mc), the target names and inputs."""

Prediction = collections.namedtuple("Prediction", "p_lens logits inputs")
Prediction.__doc__ = """What Model.predict returns: p_lens [N] (float64, P(lens) as lens predict's CSV has it),
logits [N, outputs] (float32, the raw outputs, as lens predict --out FILE.npy) and inputs (labels of
the objects: lens predict's `input` column for files, None for arrays)."""

_SIZE_FITS = {None: 0, "exact": 0, "resize": 1, "crop": 2}
# The options of Model.prepare that Model.explain passes on.
_PREPARE_OPTIONS = ("preprocess", "resize", "crop", "channels")


class _Owned:
    """The C model, freed when neither its Model nor a view of its parameters (parameters(copy=False))
    holds it any more: closing the Model leaves such views valid."""

    def __init__(self, handle):
        self.handle = handle

    def __del__(self):
        if self.handle:
            lib.lensnet_model_free(self.handle)
            self.handle = None


class Model:
    """A network of lensnet.h: `Model("weights/OU_66.safetensors")` loads one (architecture from its
    metadata); `Model.create("ou66", bands=4)` makes a fresh one to train."""

    def __init__(self, path=None, _handle=None):
        self._m = None
        self._owner = None
        if _handle is not None:
            self._m = _handle
            self.path = None
        else:
            if path is None:
                raise LensError("Model: give the path of a .safetensors file (or use Model.create)", 6)
            handle, err = ctypes.c_void_p(), Error()
            check(lib.lensnet_model_load(encode(os.fspath(path)), ctypes.byref(handle), ctypes.byref(err)), err)
            self._m = handle
            self.path = os.fspath(path)
        self._owner = _Owned(self._m)
        shape = (ctypes.c_size_t * 7)()
        lib.liblens_model_shape(self._m, shape)
        self.input_shape = (shape[0], shape[1], shape[2])
        self.outputs = shape[3]
        self._counts = tuple(shape)

    @classmethod
    def create(cls, arch="ou66", bands=4, classes=("non-lens", "lens"), outputs=None, init="pytorch", seed=1):
        """A fresh model: arch is a built-in (ou66, ou200, ensai, resnet18, resnet34, p4cnn; the last
        three at their default input size, 224 and 64, or written "p4cnn(bands,outputs,height,width)"),
        architecture text or the path of a file of it; `bands` inputs for a built-in, one output per
        class (or `outputs`); weights
        initialised from `seed` by He et al.'s scheme (init="he") or PyTorch's default ("pytorch"),
        as `lens train --arch A --weight-init I --seed S` starts them."""
        if init not in ("he", "pytorch"):
            raise LensError("init must be 'he' or 'pytorch', got %r" % (init,), 6)
        if isinstance(arch, str) and "\n" not in arch and os.path.isfile(arch):
            with open(arch) as f:
                arch = f.read()
        if outputs is None and not classes:
            raise LensError("Model.create: give the class names or the number of outputs", 6)
        n_out = int(outputs) if outputs is not None else len(classes)
        handle, err = ctypes.c_void_p(), Error()
        check(lib.liblens_model_new(encode(arch), int(bands), n_out, init == "he", int(seed), ctypes.byref(handle), ctypes.byref(err)), err)
        m = cls(_handle=handle)
        if classes and len(classes) == n_out:
            m.set_metadata("classes", ",".join(classes))
        return m

    # ---- lifetime ----------------------------------------------------------------------------
    def close(self):
        """Frees the model now (it is also freed when garbage-collected); its methods then raise. Views
        from parameters(copy=False) keep the memory they show until they are gone."""
        self._m = None
        self._owner = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if not self._m:
            raise LensError("the model was closed", 6)
        return self._m

    def __repr__(self):
        if not self._m:
            return "lens.Model(%s: closed)" % (self.path or "created")
        return "lens.Model(%s: %d bands %dx%d -> %s)" % (self.path or "created", self.input_shape[0], self.input_shape[1],
                                                       self.input_shape[2], ",".join(self.classes))

    # ---- what the model says about itself ----------------------------------------------------
    @property
    def bands(self):
        return self.input_shape[0]

    @property
    def metadata(self):
        """The safetensors metadata, as a dict of strings."""
        out, key, value, i = {}, ctypes.c_char_p(), ctypes.c_char_p(), 0
        while lib.liblens_model_meta_at(self._handle(), i, ctypes.byref(key), ctypes.byref(value)):
            out[key.value.decode()] = value.value.decode("utf-8", "replace")
            i += 1
        return out

    def set_metadata(self, key, value):
        if lib.lensnet_model_set_meta(self._handle(), encode(key), encode(str(value))) != 0:
            raise LensError("out of memory", 1)

    def _name(self, fn, k):
        buf, err = ctypes.create_string_buffer(256), Error()
        check(fn(self._handle(), k, buf, len(buf), ctypes.byref(err)), err)
        return buf.value.decode("utf-8", "replace")

    @property
    def classes(self):
        """Names of the outputs (metadata "classes"; a number where it has none)."""
        return [self._name(lib.lensnet_model_class_name, k) for k in range(self.outputs)]

    @property
    def band_names(self):
        """Names of the input bands (metadata "band_names"; "band k" where it has none)."""
        return [self._name(lib.lensnet_model_band_name, k) for k in range(self.bands)]

    @property
    def lens_class(self):
        """The output P(lens) is read from: "lens" in the classes, else the last."""
        k, err = ctypes.c_size_t(), Error()
        check(lib.lensnet_model_class_index(self._handle(), b"lens", ctypes.byref(k), ctypes.byref(err)), err)
        return k.value

    @property
    def pixel_scale(self):
        """Arcseconds per input pixel from the metadata, or None."""
        v, err = ctypes.c_double(), Error()
        check(lib.lensnet_model_pixel_scale(self._handle(), ctypes.byref(v), ctypes.byref(err)), err)
        return v.value or None

    @property
    def preprocess(self):
        """How the model wants inputs scaled, from its metadata: "minmax" or "none"."""
        v, key, err = ctypes.c_int(), ctypes.c_char_p(), Error()
        check(lib.lensnet_model_preprocess(self._handle(), ctypes.byref(v), ctypes.byref(key), ctypes.byref(err)), err)
        return "minmax" if v.value else "none"

    @property
    def layers(self):
        """(type, options) of every layer, as `lens info` lists them."""
        out, kind, buf, i = [], ctypes.c_char_p(), ctypes.create_string_buffer(256), 0
        while lib.liblens_model_layer_at(self._handle(), i, ctypes.byref(kind), buf, len(buf)):
            out.append((kind.value.decode(), buf.value.decode()))
            i += 1
        return out

    @property
    def parameter_count(self):
        """Trainable parameter values."""
        return lib.lensnet_model_parameter_count(self._handle())

    def parameters(self, copy=True):
        """{PyTorch state_dict name: array} of every parameter and buffer. copy=False gives views of
        the model's own memory: writing them changes the model, and they keep that memory alive (also
        after close(), when they no longer change a model anyone uses)."""
        count = ctypes.c_size_t()
        base = lib.liblens_model_values(self._handle(), ctypes.byref(count))
        if not count.value:
            return {}
        memory = (ctypes.c_float * count.value).from_address(ctypes.cast(base, ctypes.c_void_p).value)
        memory._owner = self._owner  # the views' base holds the model's memory
        values = np.frombuffer(memory, dtype=np.float32, count=count.value)
        out, name, shape, ndim, offset, n, trainable, i = {}, ctypes.c_char_p(), (ctypes.c_size_t * 8)(), ctypes.c_int(), \
            ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_int(), 0
        while lib.liblens_model_param_at(self._handle(), i, ctypes.byref(name), shape, ctypes.byref(ndim), ctypes.byref(offset),
                                         ctypes.byref(n), ctypes.byref(trainable)):
            a = values[offset.value:offset.value + n.value].reshape(tuple(shape[:ndim.value]))
            out[name.value.decode()] = a.copy() if copy else a
            i += 1
        return out

    def save(self, path):
        """Writes the weights and metadata as safetensors (atomically: a temporary file, renamed)."""
        err = Error()
        check(lib.lensnet_model_save(self._handle(), encode(os.fspath(path)), ctypes.byref(err)), err)

    # ---- inputs --------------------------------------------------------------------------------
    def _minmax(self, preprocess):
        if preprocess is None:
            return self.preprocess == "minmax"
        if preprocess in (True, "minmax"):
            return True
        if preprocess in (False, "none"):
            return False
        raise LensError("preprocess must be 'minmax', 'none' or None (the model's metadata), got %r" % (preprocess,), 6)

    def _objects(self, images):
        """images as [N, bands, h, w] float32 (no copy when already C-contiguous float32), by the rule
        lens predict applies to a .npy file: [N,C,H,W]; [N,H,W] for a one-band model; [C,H,W]; [H,W]."""
        x = as_f32(images, "images")
        if x.ndim == 4:
            return x
        if x.ndim == 3 and self.bands == 1 and x.shape[0] != 1:
            return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
        if x.ndim == 3:
            return x.reshape((1,) + x.shape)
        if x.ndim == 2:
            return x.reshape((1, 1) + x.shape)
        raise LensError("expected an array [N,C,H,W], [C,H,W] or [H,W], got %d dimensions" % x.ndim, 5)

    def _cutout_args(self, channels, resize, crop):
        if resize and crop:
            raise LensError("resize and crop exclude each other", 6)
        fit = 1 if resize else 2 if crop else 0
        if channels is None:
            return None, 0, fit
        given = np.asarray(channels).ravel()
        if given.dtype.kind not in "iu" or (given.size and given.min() < 0):
            raise LensError("channels lists band numbers from 0, got %s" % (list(given),), 6)
        ch = np.ascontiguousarray(given, dtype=np.uintp)
        if len(ch) != self.bands:
            raise LensError("the channel list names %d bands but the model takes %d" % (len(ch), self.bands), 6)
        return ch, len(ch), fit

    def _note(self, counts, channels):
        if counts[2] and channels is None:
            warnings.warn("inputs have more bands than the model's %d: using bands 0..%d (choose with channels=)" %
                          (self.bands, self.bands - 1), stacklevel=3)
        if counts[3]:
            warnings.warn("%d blank (NaN or infinite) input pixels were left out of the resize and filled in from "
                          "the pixels around them" % counts[3], stacklevel=3)
        if counts[0]:
            warnings.warn("%d NaN (blank) pixels were set to 0" % counts[0], stacklevel=3)
        if counts[1]:
            warnings.warn("%d infinite pixels were set to 0" % counts[1], stacklevel=3)

    def prepare(self, images, preprocess=None, resize=False, crop=False, channels=None, out=None):
        """Model inputs [N, C, H, W] from images (lensnet_cutout_prepare, as lens predict prepares
        them): bands picked (channels: the input band of each model band), the size fitted (exact,
        resize: bilinear, crop: central), min-max scaled per band when preprocess says so (None:
        the model's metadata), NaN and infinite pixels set to 0 (a resize leaves them out of the
        interpolation first, filling them in from the pixels around them; a warning says how many).
        out: a C-contiguous float32 array of that shape to write into."""
        x = self._objects(images)
        ch, nch, fit = self._cutout_args(channels, resize, crop)
        shape = (x.shape[0],) + self.input_shape
        out = _output(out, shape, np.float32, "out")
        counts, err = (ctypes.c_size_t * 4)(), Error()
        check(lib.liblens_prepare(self._handle(), ptr(x), x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                                  ch.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t)) if ch is not None else None, nch, fit,
                                  self._minmax(preprocess), ptr(out), counts, ctypes.byref(err)), err)
        self._note(counts, channels)
        return out

    # ---- predictions ---------------------------------------------------------------------------
    def predict(self, images, preprocess=None, resize=False, crop=False, channels=None, out=None, inputs=None, exact=False,
                _plane_files=None):
        """Scores images as `lens predict` does: each prepared as Model.prepare says, one forward
        pass each. images: [N,C,H,W], [C,H,W] or [H,W] (and [N,H,W] for a one-band model), any
        numeric dtype (C-contiguous float32 is read in place; anything else is converted once).
        out: a C-contiguous float32 array [N, outputs] the logits are written into (in place).
        exact: every convolution as direct sums (lens predict --exact); by default, on a CPU with
        AVX-512, 3x3 and 5x5 ones as Winograd's, as lens predict runs them (equal to rounding).
        Returns Prediction(p_lens, logits, inputs); for a regression model the logits are its raw
        outputs and Model.regress gives the targets in physical units. An object with an input plane
        that holds no image (every finite pixel the same value, or none finite) is scored with a
        warning, as lens predict notes it."""
        x = self._objects(images)
        ch, nch, fit = self._cutout_args(channels, resize, crop)
        logits = _output(out, (x.shape[0], self.outputs), np.float32, "out")
        p = np.empty(x.shape[0], dtype=np.float64)
        counts, err = (ctypes.c_size_t * 4)(), Error()
        check(lib.liblens_predict(self._handle(), ptr(x), x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                                  ch.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t)) if ch is not None else None, nch, fit,
                                  self._minmax(preprocess), 1 if exact else 0, ptr(logits), ptr(p), counts, ctypes.byref(err)), err)
        self._note(counts, channels)
        self._empty_note(x, ch, inputs, _plane_files)
        return Prediction(p, logits, inputs)

    def _empty_note(self, x, ch, inputs, plane_files):
        """lens predict's note on objects [N, bands, h, w] fed an input plane that holds no image:
        every finite pixel the same value, or none finite (a cutout wholly off a survey's footprint),
        tested on the pixels as given, before any resize. plane_files: the file of each plane of a
        one-object stack (predict_file of several files), to name it."""
        empty, first = np.zeros(x.shape[0], dtype=bool), {}
        for c in range(self.bands):
            plane = int(ch[c]) if ch is not None else c
            if plane >= x.shape[1]:
                continue
            for start in range(0, x.shape[0], 1024):  # in slices, so that the copies stay small
                a = x[start:start + 1024, plane].reshape(-1, x.shape[2] * x.shape[3])
                finite = np.isfinite(a)
                blank = np.where(finite, a, np.inf).min(axis=1) >= np.where(finite, a, -np.inf).max(axis=1)  # none finite: inf >= -inf
                for i in np.flatnonzero(blank & ~empty[start:start + 1024]):
                    first[start + i] = (plane, c)
                empty[start:start + 1024] |= blank
        if not empty.any():
            return
        i = int(np.flatnonzero(empty)[0])
        plane, c = first[i]
        label = inputs[i] if inputs is not None and i < len(inputs) else "object %d" % i
        if plane_files is not None:
            where = os.fspath(plane_files[plane])
        else:
            where = "%s, plane %d" % (label, plane) if x.shape[1] > 1 else label
        n = int(empty.sum())
        warnings.warn("%d object%s scored with an input plane that holds no image (every finite pixel the same value, or none "
                      "finite), which the model never saw in training: the first %s (fed as the model's %s)" %
                      (n, "" if n == 1 else "s", where, self.band_names[c]), stacklevel=3)

    def regress(self, images, **options):
        """For a regression model (lens train --task regress; docs/modelling.md): each target's mean
        and sigma in physical units, one forward pass per object, as lens predict writes them without
        --mc. images and options as predict's (a list or a path: as predict_file's, with hdu).
        Returns Regression(mean, sigma, names, inputs)."""
        count, err = ctypes.c_size_t(), Error()
        check(lib.liblens_regress(self._handle(), None, 0, None, None, ctypes.byref(count), ctypes.byref(err)), err)
        if isinstance(images, (str, bytes, os.PathLike, list, tuple)) and not (isinstance(images, (list, tuple)) and
                                                                              np.asarray(images).dtype.kind in "fiub"):
            p = self.predict_file(images, **options)
        else:
            p = self.predict(images, **options)
        n, T = p.logits.shape[0], count.value
        mean, sigma = np.empty((n, T)), np.empty((n, T))
        check(lib.liblens_regress(self._handle(), ptr(p.logits), n, ptr(mean), ptr(sigma), ctypes.byref(count), ctypes.byref(err)), err)
        return Regression(mean, sigma, self.metadata["regress.targets"].split(","), p.inputs)

    def predict_file(self, paths, hdu=-1, **options):
        """Scores the objects of a file as `lens predict FILE` does: a .npy array (N objects, labelled
        FILE[i]) or a FITS image or cube (one object); a list of FITS files is one object, one band
        each (lens predict --bands B): when every file's FILTER header names one of the model's
        band_names, each once, the files go to the bands they name, whatever their order (a
        warning says so), else in the order given (always so with channels=); a .npy whose planes
        are named beside it (X.bands.txt, or lens sim's bands.txt beside its images.npy) goes to the
        model's bands by those names, with a warning, as lens predict feeds it. options: those of
        predict."""
        if isinstance(paths, (list, tuple)):
            if not paths:
                raise LensError("predict_file: give at least one path (a list of files is one object, one band each)", 6)
            planes, paths_fed = [read(p, hdu=hdu) for p in paths], list(paths)
            for p, a in zip(paths, planes):
                if a.ndim != 2:
                    raise LensError("%s: with several files each must hold one band (a 2-D image)" % p, 6)
                if a.shape != planes[0].shape:
                    raise LensError("%s: its size differs from the other bands of the object" % p, 5)
            if options.get("channels") is None and len(paths) > 0:
                names = (ctypes.c_char_p * len(paths))(*[encode(os.fspath(p)) for p in paths])
                slot, by_filter, err = (ctypes.c_size_t * len(paths))(), ctypes.c_int(), Error()
                check(lib.lensnet_fits_band_slots(self._handle(), names, len(paths), int(hdu), slot, ctypes.byref(by_filter),
                                                  ctypes.byref(err)), err)
                order = list(slot)
                if by_filter.value and order != list(range(len(paths))):
                    bands = self.band_names
                    warnings.warn("the files of an object come in the order %s (their FILTER headers); they are fed to the "
                                  "model in its band order %s" % (",".join(bands[k] for k in order), ",".join(bands)),
                                  stacklevel=2)
                    stacked, files = [None] * len(paths), [None] * len(paths)
                    for i, k in enumerate(order):
                        stacked[k], files[k] = planes[i], paths[i]
                    planes, paths_fed = stacked, files
            return self.predict(np.stack(planes)[None], inputs=["+".join(os.fspath(p) for p in paths)], _plane_files=paths_fed,
                                **options)
        path = os.fspath(paths)
        a = read(path, hdu=hdu)
        if path.endswith(".npy"):
            x = self._objects(a)
            if options.get("channels") is None and self.metadata.get("band_names") and x.shape[1] <= 64:
                # planes named beside the stack (X.bands.txt; lens sim's bands.txt beside its images.npy) go to
                # the model's bands by name, as lens predict feeds them
                names_file = path[:-4] + ".bands.txt"
                if not os.path.exists(names_file) and os.path.basename(path) == "images.npy":
                    names_file = os.path.join(os.path.dirname(path), "bands.txt")
                if os.path.exists(names_file):
                    try:
                        with open(names_file, "rb") as f:
                            text = f.read()
                    except OSError as e:
                        raise LensError("%s: cannot read it (%s), so the planes of %s have no names" % (names_file, e, path), 3)
                    c = len(self.band_names)
                    pick, named, err = (ctypes.c_size_t * max(c, 1))(), ctypes.c_int(), Error()
                    check(lib.lensnet_band_pick(self._handle(), ctypes.c_char_p(text), x.shape[1], pick, ctypes.byref(named),
                                                ctypes.byref(err)), err)
                    order = list(pick)[:c]
                    if named.value and (order != list(range(c)) or x.shape[1] != c):
                        warnings.warn("%s holds %s (%s); the model takes %s: its planes are fed by name (channels= takes them by "
                                      "number)" % (path, text.decode("utf-8", "replace").strip(), names_file, ",".join(self.band_names)),
                                      stacklevel=2)
                        options["channels"] = order
            return self.predict(x, inputs=["%s[%d]" % (path, i) for i in range(x.shape[0])], **options)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim not in (2, 3):
            raise LensError("%s: expected a 2-D image or a 3-D cube [bands, y, x], got %s" % (path, list(a.shape)), 5)
        if a.ndim == 3 and a.shape[0] > 1 and options.get("channels") is None:
            # a cube whose BAND1, BAND2, ... cards name the model's bands in another order: fed by name
            slot, named, err = (ctypes.c_size_t * a.shape[0])(), ctypes.c_int(), Error()
            check(lib.lensnet_fits_cube_band_slots(self._handle(), encode(path), int(hdu), a.shape[0], slot, ctypes.byref(named),
                                                   ctypes.byref(err)), err)
            order = list(slot)
            if named.value and order != list(range(a.shape[0])):
                warnings.warn("%s names its planes (BAND1, BAND2, ...) in another order than the model's bands; they are fed to "
                              "the model by name (channels= takes them as given)" % path, stacklevel=2)
                b = np.empty_like(a)
                b[order] = a
                a = b
        return self.predict(a.reshape((1,) * (4 - a.ndim) + a.shape), inputs=[path], **options)

    # ---- explanations --------------------------------------------------------------------------
    def default_layer(self, use="gradcam"):
        """The layer Grad-CAM ("gradcam"), filter images ("filters") or dreams ("dream") look at by default."""
        uses = {"gradcam": 0, "guided-gradcam": 0, "filters": 1, "dream": 2}
        if use not in uses:
            raise LensError("use must be one of %s" % ", ".join(uses), 6)
        k, err = ctypes.c_size_t(), Error()
        check(lib.lensviz_default_layer(self._handle(), uses[use], ctypes.byref(k), ctypes.byref(err)), err)
        return k.value

    def explain(self, image, method="gradcam", target=None, layer=None, patch=0, stride=0, fill=0.0, steps=0, samples=0, noise=0.0,
                seed=1, prepared=False, out=None, **prepare_options):
        """What `lens explain --method METHOD` writes as METHOD.npy, for one image: occlusion
        [rows, cols] (P(target | patch filled) - P(target)), gradcam [h, w] of the layer, and
        saliency, guided, guided-gradcam, ig, smoothgrad [C, H, W]. The image is prepared as
        predict prepares it (prepare_options: preprocess, resize, crop, channels) unless prepared=True.
        target: an output index (None: the lens class); layer: None for the default
        (Model.default_layer); patch, stride, fill (occlusion), steps (ig), samples and noise
        (smoothgrad): 0 for lensviz's defaults (4, the patch, 0, 32, 25, 0.15); seed as lens
        explain's --seed. out: a C-contiguous float32 array of the map's shape to write into."""
        unknown = [k for k in prepare_options if k not in _PREPARE_OPTIONS]
        if unknown:
            raise TypeError("Model.explain() got an unexpected keyword argument %r (it takes method, target, layer, patch, "
                            "stride, fill, steps, samples, noise, seed, prepared, out, and prepare's %s)" %
                            (unknown[0], ", ".join(_PREPARE_OPTIONS)))
        x = as_f32(image, "image")
        if prepared:
            if x.shape[-3:] != self.input_shape or x.size != int(np.prod(self.input_shape)):
                raise LensError("a prepared image has the model's input shape %s, got %s" % (self.input_shape, x.shape), 5)
        else:
            if x.ndim == 4 and x.shape[0] != 1:
                raise LensError("explain takes one image, got a batch of %d" % x.shape[0], 5)
            x = self.prepare(x.reshape(x.shape[1:]) if x.ndim == 4 else x, **prepare_options)
            if x.shape[0] != 1:  # [N, H, W] for a one-band model: N images, as predict reads them
                raise LensError("explain takes one image, got %d (an array %s is read as %d images of the model's %d band(s), "
                                "as predict reads it)" % (x.shape[0], tuple(image.shape) if hasattr(image, "shape") else "",
                                                          x.shape[0], self.bands), 5)
        t = -1 if target is None else int(target)
        L = -1 if layer is None else int(layer)
        shape, ndim, used, base, err = (ctypes.c_size_t * 4)(), ctypes.c_int(), ctypes.c_long(), ctypes.c_double(), Error()
        for name, value in (("patch", patch), ("stride", stride), ("steps", steps), ("samples", samples)):
            if int(value) < 0:
                raise LensError(f"explain: {name} must be 0 (the default) or positive, not {int(value)}", 6)
        args = (self._handle(), encode(method), ptr(x), t, L, int(patch), int(stride), float(fill), int(steps), int(samples),
                float(noise), int(seed))
        check(lib.liblens_explain(*args, None, 0, shape, ctypes.byref(ndim), ctypes.byref(used), None, ctypes.byref(err)), err)
        result = _output(out, tuple(shape[:ndim.value]), np.float32, "out")
        check(lib.liblens_explain(*args, ptr(result), result.size, shape, ctypes.byref(ndim), ctypes.byref(used), ctypes.byref(base),
                                  ctypes.byref(err)), err)
        return result

    def map_on_image(self, map, method="gradcam", layer=None, patch=0, stride=0, smooth=True):
        """A Grad-CAM or occlusion map (as explain returned it, with the same layer, patch and stride)
        on the pixels of the model's input, [H, W]: each cell where its receptive field (Grad-CAM)
        or its patch (occlusion) lies, bilinear between cell centres (smooth) or the nearest cell.
        Returns (values [H, W] float32, inside [H, W] bool: the pixels the cells cover). OU-66's 4x4
        Grad-CAM cells cover only the middle of its image; stretching the map over the whole
        picture would misplace them (docs/explain.md)."""
        mp = as_f32(map, "map")
        if mp.ndim != 2:
            raise LensError("map_on_image takes a map [rows, cols], got %d dimensions" % mp.ndim, 5)
        H, W = self.input_shape[1], self.input_shape[2]
        out, inside, err = np.empty((H, W), np.float32), np.zeros((H, W), np.uint8), Error()
        check(lib.liblens_map_on_image(self._handle(), encode(method), -1 if layer is None else int(layer), int(patch), int(stride),
                                       ptr(mp), mp.shape[0], mp.shape[1], int(bool(smooth)), ptr(out), ptr(inside), ctypes.byref(err)), err)
        return out, inside.astype(bool)


def _output(out, shape, dtype, name):
    """A new array of that shape, or `out` checked to be one the library can write in place."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or not out.flags.c_contiguous or not out.flags.writeable:
        raise LensError("%s must be a writable C-contiguous %s array" % (name, np.dtype(dtype).name), 6)
    if out.shape != tuple(shape):
        raise LensError("%s has shape %s but the result is %s" % (name, out.shape, tuple(shape)), 5)
    return out
