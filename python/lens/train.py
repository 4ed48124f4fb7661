"""Training with lensnet_fit: the loop `lens train` runs, with progress reported to Python."""
import ctypes
import os
import sys

from ._lib import lib, check, as_f32, ptr, encode, Error, LensError, PROGRESS

__all__ = ["train", "settings"]

_FIELDS = ("epoch", "epochs", "epoch_done", "seen", "train_count", "val_count", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
           "seconds", "best")


def settings():
    """{name: help} of the training settings train() takes as keywords (lensnet_fit_settings: the
    options of lens train, with '_' where the tool has '-')."""
    out, help_, i = {}, ctypes.c_char_p(), 0
    while True:
        name = lib.liblens_fit_setting_at(i, ctypes.byref(help_))
        if name is None:
            return out
        out[name.decode()] = help_.value.decode()
        i += 1


def _text(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def _print_epoch(p, score):
    print("epoch %d/%d: lr %.3g train loss %.4f %s %.3f, val loss %.4f %s %.3f, %.1f s" %
          (p["epoch"], p["epochs"], p["lr"], p["train_loss"], score, p["train_acc"], p["val_loss"], score, p["val_acc"], p["seconds"]),
          file=sys.stderr, flush=True)


def train(model, images, labels, out=None, progress=True, every_batch=False, target_names=None, **fit_settings):
    """Trains model (a lens.Model) in place with lensnet_fit, the loop of lens train, on images
    [N, C, H, W] and labels [N] (class indices) or [N, T] (regression targets, named by
    target_names, e.g. "theta_E,e1,e2"). fit_settings: any of lens.settings(), e.g. epochs=10,
    batch=32, lr=1e-3, optimizer="adam", schedule="cosine", class_weights="auto",
    augment="flip,rot90", minmax=True, val_fraction=0.1, seed=1 (lens train's default seed is 1,
    and so is this one's). Without minmax, the model's own "preprocess" applies (a finder loaded
    from its file is fine-tuned on images scaled as it was trained; a new model: none). out: a folder for checkpoint.safetensors, best.safetensors and
    history.csv, as lens train --out writes them (created). progress: True prints a line per
    epoch on stderr, False is silent, a function gets a dict per epoch (epoch, epochs, lr,
    train_loss, train_acc, val_loss, val_acc, seconds, best, ...), and per batch too with
    every_batch (epoch_done then 0); a true return value stops the run after the epoch.
    Returns the history: one dict per finished epoch."""
    x = as_f32(images, "images")
    if x.ndim != 4:
        raise LensError("images must be [N, C, H, W], got %d dimensions" % x.ndim, 5)
    y = as_f32(labels, "labels")
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise LensError("%s labels for %d images: labels must be [N] or [N, targets]" % (y.shape[0] if y.ndim else 0, x.shape[0]), 5)
    targets = y.shape[1] if y.ndim == 2 else 0
    if targets and target_names is None:
        target_names = ",".join("t%d" % k for k in range(targets))
    if isinstance(target_names, (list, tuple)):
        target_names = ",".join(target_names)
    fit_settings.setdefault("seed", 1)
    handle = lib.liblens_fit_new()
    if not handle:
        raise LensError("out of memory", 1)
    history, failure = [], []

    def on_progress(user, *values):
        p = dict(zip(_FIELDS, values))
        for k in ("seen", "train_count", "val_count"):
            p[k] = int(p[k])
        p["epoch_done"], p["best"] = bool(p["epoch_done"]), bool(p["best"])
        if p["epoch_done"]:
            history.append({k: p[k] for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "best")})
        try:
            if not progress:
                return 0
            if progress is True:
                if p["epoch_done"]:
                    _print_epoch(p, "rms" if targets else "acc")  # regression: standardised rms error
                return 0
            return 1 if progress(p) else 0
        except BaseException as e:  # stops the run; raised again below
            failure.append(e)
            return 1

    callback = PROGRESS(on_progress)  # always: it gathers the history
    err = Error()
    try:
        for name, value in fit_settings.items():
            check(lib.liblens_fit_set(handle, encode(name), encode(_text(value)), ctypes.byref(err)), err)
        if out is not None:
            os.makedirs(os.fspath(out), exist_ok=True)
        r = lib.liblens_fit_run(handle, model._handle(), ptr(x), x.shape[0], x.shape[1], x.shape[2], x.shape[3], ptr(y), targets,
                                encode(target_names) if targets else None, encode(os.fspath(out)) if out is not None else None,
                                callback, None, int(bool(every_batch)), ctypes.byref(err))
    finally:
        lib.liblens_fit_free(handle)
    if failure:
        raise failure[0]
    check(r, err)
    return history
