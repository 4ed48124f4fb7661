"""lens: the lens toolkit (lensnet.h, lenssim.h, lensviz.h) from Python, through ctypes.

    import lens
    m = lens.Model("weights/OU_66.safetensors")
    p = m.predict(images)                 # images [N, 4, 66, 66] -> p.p_lens [N], p.logits [N, 2]
    cam = m.explain(images[0], "gradcam") # the map lens explain writes as gradcam.npy
    img = lens.render(lens.scene(...))    # a lenstronomy-style scene, as lens render renders it
    data = lens.simulate("euclid-lensfinding", n=64, seed=1)   # as lens sim
    lens.train(model, data.images, data.classes, epochs=2)     # as lens train

Failures raise lens.LensError carrying the library's sentence. The library is build/liblens.so
(`make shared`); docs/python.md says where the module looks for it."""
from ._lib import LensError, library_path, lib as _clib
from .model import Model, Prediction, Regression, METHODS
from .files import read
from .sim import scene, render, simulate, Dataset
from .train import train, settings
from .pictures import composite, colorize, overlay, write_png

__version__ = _clib.liblens_version().decode()
has_png = bool(_clib.liblens_has_png())

__all__ = ["LensError", "Model", "Prediction", "Regression", "METHODS", "read", "scene", "render", "simulate", "Dataset", "train", "settings",
           "composite", "colorize", "overlay", "write_png", "library_path", "has_png", "__version__"]
