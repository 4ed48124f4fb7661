"""The Python module (python/lens) against the lens tool: every expected value here comes from
build/lens (the CLI, itself checked against PyTorch and lenstronomy by the C tests), never from
the module's own path. Run by tests/test_python.sh with LENS (the tool) and LENS_LIBRARY set and
python/ on the path; prints "N passed, N failed"."""
import csv
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

import lens

LENS = os.environ.get("LENS", "build/lens")
MODEL = "weights/OU_66.safetensors"
passed = failed = 0


def check(description, ok):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + description, flush=True)


def cli(*args, ok=True):
    """Runs the tool; returns its stderr. ok: whether exit status 0 is expected."""
    r = subprocess.run([LENS] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if ok and r.returncode != 0:
        print("lens %s failed: %s" % (" ".join(map(str, args)), r.stderr))
    return r


def cli_message(*args):
    """The tool's error sentence for a failing command: its last "lens: ..." line without the prefix."""
    r = cli(*args, ok=False)
    lines = [l for l in r.stderr.splitlines() if l.startswith("lens: ")]
    return r.returncode, lines[-1][len("lens: "):] if lines else ""


def raises(fn):
    """The LensError fn raises, or None."""
    try:
        fn()
    except lens.LensError as e:
        return e
    return None


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def test_module(tmp):
    with open("lensnet.h") as f:
        version = [l.split('"')[1] for l in f if l.startswith("#define LENSNET_VERSION_STRING")][0]
    check("lens.__version__ is lensnet.h's (%s, got %s)" % (version, lens.__version__), lens.__version__ == version)
    check("the library comes from LENS_LIBRARY (%s)" % lens.library_path,
          os.path.realpath(lens.library_path) == os.path.realpath(os.environ.get("LENS_LIBRARY", lens.library_path)))
    m = lens.Model(MODEL)
    info = cli("info", MODEL).stdout
    check("Model: 4 bands 66x66, 2 outputs", m.input_shape == (4, 66, 66) and m.outputs == 2)
    check("Model.classes from the metadata: non-lens, lens", m.classes == ["non-lens", "lens"] and m.lens_class == 1)
    check("Model.band_names as lens info lists them (%s)" % m.band_names, all(b in info for b in m.band_names) and m.band_names == ["J", "Y", "H", "VIS"])
    check("Model.preprocess: minmax (the metadata)", m.preprocess == "minmax")
    check("Model.parameter_count as lens info says (%d)" % m.parameter_count, str(m.parameter_count) in info.replace(",", ""))
    check("Model.layers: %d layers" % len(m.layers), len(m.layers) > 20 and m.layers[0][0] == "conv2d")
    p = m.parameters()
    check("Model.parameters: PyTorch names, layer.0.weight 50x4x3x3", p["layer.0.weight"].shape == (50, 4, 3, 3))


def test_simulate(tmp):
    out = os.path.join(tmp, "sim")
    cli("sim", "--preset", "euclid-lensfinding", "--n", 24, "--seed", 3, "--threads", 2, "--fits", "--out", out)
    d = lens.simulate("euclid-lensfinding", n=24, seed=3)
    check("simulate: images equal lens sim's images.npy bit for bit", same(d.images, np.load(os.path.join(out, "images.npy"))))
    with open(os.path.join(out, "labels.csv")) as f:
        text = f.read()
    check("simulate: labels_csv is lens sim's labels.csv", d.labels_csv == text)
    rows = list(csv.DictReader(open(os.path.join(out, "labels.csv"))))
    check("simulate: labels[i]['theta_E'] and classes follow labels.csv",
          all(abs(float(r["theta_E"]) - l["theta_E"]) == 0 for r, l in zip(rows, d.labels)) and
          list(d.classes) == [int(r["label"]) for r in rows] and d.class_names == ["non-lens", "lens"])
    part = lens.simulate("euclid-lensfinding", n=4, seed=3, first=10)
    check("simulate(first=10): objects 10..13 of the run", same(part.images, d.images[10:14]))
    nf = os.path.join(tmp, "sim_nf")
    cli("sim", "--preset", "deeplense-substructure", "--n", 3, "--seed", 2, "--noise-free", "--threads", 1, "--out", nf)
    err = raises(lambda: lens.simulate("ensai-modelling", n=2, lens_fraction=0.5))
    check("simulate(ensai-modelling, lens_fraction=0.5) raises, as lens sim refuses it (%s)" % err, err is not None and "all lenses" in str(err))
    e = lens.simulate("deeplense-substructure", n=3, seed=2, noise_free=True)
    check("simulate(deeplense-substructure, noise_free) equals lens sim --noise-free", same(e.images, np.load(os.path.join(nf, "images.npy"))))
    err = raises(lambda: lens.simulate("euclid-lensfinding", n=2, layout="nope"))
    check("simulate: an unknown layout raises naming it (%s)" % err, err is not None and "'nope'" in str(err) and "ou66" in str(err))
    return out, d


def test_predict(tmp, sim, data):
    m = lens.Model(MODEL)
    images = os.path.join(sim, "images.npy")
    # lens sim names its planes in bands.txt; OU-66 (J, Y, H, VIS) gets them by name from both
    names = os.path.join(sim, "bands.txt")
    with open(names) as f:
        check("lens sim names its planes VIS,Y,J,H in bands.txt", f.read() == "VIS,Y,J,H\n")
    byname_npy = os.path.join(tmp, "byname.npy")
    cli("predict", "--model", MODEL, images, "--out", byname_npy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        byname = m.predict_file(images)
    check("predict_file(lens sim's images.npy): planes fed by bands.txt's names, as lens predict and predict(channels=[2, 1, 3, 0])",
          same(byname.logits, np.load(byname_npy)) and same(byname.logits, m.predict(data.images, channels=[2, 1, 3, 0]).logits) and
          any("fed by name" in str(w.message) for w in caught))
    os.rename(names, names + ".off")  # the checks below compare Python and the tool on the planes in file order
    csv_path, npy_path = os.path.join(tmp, "scores.csv"), os.path.join(tmp, "logits.npy")
    cli("predict", "--model", MODEL, images, "--threads", 2, "--out", csv_path)
    cli("predict", "--model", MODEL, images, "--out", npy_path)
    rows = list(csv.DictReader(open(csv_path)))
    p = m.predict(data.images)
    check("predict: logits equal lens predict --out .npy bit for bit", same(p.logits, np.load(npy_path)))
    exact_path = os.path.join(tmp, "exact.npy")
    cli("predict", "--model", MODEL, images, "--exact", "--out", exact_path)
    check("predict(exact=True): logits equal lens predict --exact's bit for bit", same(m.predict(data.images, exact=True).logits, np.load(exact_path)))
    check("predict: p_lens equals the CSV's p_lens (printed %.7g)",
          len(rows) == 24 and all(abs(float(r["p_lens"]) - q) <= 5e-7 * max(abs(q), 1e-30) for r, q in zip(rows, p.p_lens)))
    check("predict: logits equal the CSV's logit_non-lens, logit_lens (%.7g)",
          all(abs(float(r["logit_lens"]) - l[1]) <= 5e-7 * abs(l[1]) + 1e-30 for r, l in zip(rows, p.logits)))
    f = m.predict_file(images)
    check("predict_file(.npy): the CSV's input column and scores", f.inputs == [r["input"] for r in rows] and same(f.logits, p.logits))
    # FITS: one object per file, and one object from four one-band files (lens predict --bands 4)
    fits = [os.path.join(sim, "fits", "%07d.fits" % i) for i in (0, 7)]
    fcsv = os.path.join(tmp, "fits.csv")
    cli("predict", "--model", MODEL, *fits, "--out", fcsv)
    rows = list(csv.DictReader(open(fcsv)))
    got = [m.predict_file(path) for path in fits]
    check("predict_file(FITS cube): lens predict's p_lens and input",
          all(g.inputs == [r["input"]] and abs(float(r["p_lens"]) - g.p_lens[0]) <= 5e-7 * g.p_lens[0] for g, r in zip(got, rows)))
    # lens sim's cubes name their planes VIS, Y, J, H (BAND1..4): OU-66 (J, Y, H, VIS) gets them by name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = m.predict_file(fits[0])
    check("predict_file(lens sim cube): planes fed by their BANDn names, as predict(channels=[2, 1, 3, 0]), with a warning",
          same(cube.logits, m.predict(data.images[:1], channels=[2, 1, 3, 0]).logits) and any("BAND1" in str(w.message) for w in caught))
    with open("samples/objects.txt") as fo:
        bands = fo.readline().split()
    bcsv = os.path.join(tmp, "bands.csv")
    cli("predict", "--model", MODEL, "--bands", 4, *bands, "--out", bcsv)
    row = list(csv.DictReader(open(bcsv)))[0]
    g = m.predict_file(bands)
    check("predict_file([4 FITS bands]): lens predict --bands 4 (%s vs %s)" % (row["p_lens"], g.p_lens[0]),
          g.inputs == [row["input"]] and abs(float(row["p_lens"]) - g.p_lens[0]) <= 5e-7 * g.p_lens[0])
    # the same four files in a shell glob's order (H, J, VIS, Y): they go where their FILTER headers say
    globbed = sorted(bands)
    gcsv = os.path.join(tmp, "glob.csv")
    cli("predict", "--model", MODEL, "--bands", 4, *globbed, "--out", gcsv)
    row = list(csv.DictReader(open(gcsv)))[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g2 = m.predict_file(globbed)
    check("predict_file([4 FITS bands in glob order]): fed by FILTER as lens predict --bands 4 (%s vs %s), the same "
          "score as in band order, and a warning" % (row["p_lens"], g2.p_lens[0]),
          globbed != bands and abs(float(row["p_lens"]) - g2.p_lens[0]) <= 5e-7 * g2.p_lens[0] and
          same(g2.logits, g.logits) and any("FILTER" in str(w.message) for w in caught))
    check("predict_file([...], channels=...) takes the files as given",
          not same(m.predict_file(globbed, channels=[0, 1, 2, 3]).logits, g.logits))
    try:
        m.predict_file([bands[0], bands[0], bands[2], bands[3]])
        check("predict_file: a band given twice is refused", False)
    except lens.LensError as e:
        check("predict_file: a band given twice is refused (%s)" % e, "both have FILTER" in str(e))
    # preprocessing options: none, crop and resize, each against the tool's flag
    big = np.pad(data.images[:5], ((0, 0), (0, 0), (3, 5), (4, 4)), mode="reflect").astype(np.float32)
    big_path = os.path.join(tmp, "big.npy")
    np.save(big_path, big)
    for flag, kw, src, arr in (("--preprocess none", {"preprocess": "none"}, images, data.images),
                               ("--crop", {"crop": True}, big_path, big), ("--resize", {"resize": True}, big_path, big),
                               ("--channels 3,2,1,0", {"channels": [3, 2, 1, 0]}, images, data.images)):
        out = os.path.join(tmp, "opt.npy")
        cli("predict", "--model", MODEL, src, *flag.split(), "--out", out)
        check("predict(%s) equals lens predict %s" % (kw, flag), same(m.predict(arr, **kw).logits, np.load(out)))
    # blank pixels with resize: left out of the interpolation, as lens predict --resize does, and said
    holed = big.copy()
    holed[0, 1, 10, 12] = np.nan
    holed[1, 0, 30:33, 40:43] = np.nan
    holed_path = os.path.join(tmp, "holed.npy")
    np.save(holed_path, holed)
    out = os.path.join(tmp, "holed_scores.npy")
    cli("predict", "--model", MODEL, holed_path, "--resize", "--out", out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = m.predict(holed, resize=True).logits
    said = [str(w.message) for w in caught]
    check("predict(resize=True) with 10 blank pixels equals lens predict --resize, and says they were filled in (%s)" % said,
          same(got, np.load(out)) and any(t.startswith("10 blank (NaN or infinite) input pixels were left out of the resize") for t in said))
    # an input plane that holds no image (constant, or no finite pixel): scored, with lens predict's note as a warning
    empty = data.images[:4].copy()
    empty[1, 2] = 7.5
    empty[3, 0] = np.nan
    empty[3, 0, 5, 5] = 1.0  # one finite pixel: still no image
    empty_path = os.path.join(tmp, "empty.npy")
    np.save(empty_path, empty)
    note = [l[len("lens: note: "):] for l in cli("predict", "--model", MODEL, empty_path, "--out", os.path.join(tmp, "empty.npy.csv")).stderr.splitlines()
            if "holds no image" in l]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = m.predict_file(empty_path)
    said = [str(w.message) for w in caught if "holds no image" in str(w.message)]
    check("predict_file(2 objects with a constant or all-NaN plane) warns with lens predict's note (%s | %s)" % (said, note),
          len(note) == 1 and said == note and "2 objects" in note[0] and "empty.npy[1], plane 2 (fed as the model's H)" in note[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.predict(empty[:1])
        m.predict(empty[3:], channels=[1, 2, 3, 0])
    said = [str(w.message) for w in caught if "holds no image" in str(w.message)]
    check("predict warns only for an object fed such a plane, naming the model band it feeds (%s)" % said,
          len(said) == 1 and said[0].startswith("1 object scored") and "object 0, plane 0 (fed as the model's VIS)" in said[0])
    with open(bands[2], "rb") as f:
        fits_bytes = bytearray(f.read())
    fits_bytes[2880:] = bytes(len(fits_bytes) - 2880)  # the header's one block kept, every pixel 0
    blank_h = os.path.join(tmp, "blank_H.fits")
    with open(blank_h, "wb") as f:
        f.write(fits_bytes)
    files = [bands[0], bands[1], blank_h, bands[3]]
    note = [l[len("lens: note: "):] for l in cli("predict", "--model", MODEL, "--bands", 4, *sorted(files)).stderr.splitlines() if "holds no image" in l]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.predict_file(sorted(files))
    said = [str(w.message) for w in caught if "holds no image" in str(w.message)]
    check("predict_file([4 FITS bands], one all 0) names that file as lens predict --bands 4 does (%s | %s)" % (said, note),
          len(note) == 1 and len(said) == 1 and note[0].startswith(said[0]) and "blank_H.fits (fed as the model's H)" in said[0])
    # conversions: float64, non-contiguous and integer inputs are converted once and score the same
    x = data.images[:6]
    ref = m.predict(x).logits
    check("predict(float64) scores as float32", same(m.predict(x.astype(np.float64)).logits, ref))
    fortran = np.asfortranarray(x)
    check("predict(Fortran-order array) scores the same", same(m.predict(fortran).logits, ref))
    strided = np.zeros((6, 4, 66, 132), np.float32)
    strided[..., ::2] = x
    check("predict(a strided view) scores the same", same(m.predict(strided[..., ::2]).logits, ref))
    check("predict(one image [C,H,W]) is a batch of one", same(m.predict(x[2]).logits, ref[2:3]))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(3) as pool:
        parts = list(pool.map(lambda chunk: m.predict(chunk).logits, np.array_split(data.images, 6)))
    check("predict from several threads sharing one Model scores as one call", same(np.concatenate(parts), p.logits))
    # zero copy: float32 C-contiguous input is read in place; out= is written in place
    check("a C-contiguous float32 array is passed as it is (no copy)", lens._lib.as_f32(x) is x)
    buf = np.full((6, 2), np.nan, np.float32)
    r = m.predict(x, out=buf)
    check("predict(out=buf): the logits are written into buf itself", r.logits is buf and same(buf, ref))
    pbuf = np.full((6, 4, 66, 66), np.nan, np.float32)
    check("prepare(out=buf) writes buf in place", m.prepare(x, out=pbuf) is pbuf and not np.isnan(pbuf).any())
    view = m.parameters(copy=False)["layer.0.bias"]
    check("parameters(copy=False) are views of the model's memory", np.shares_memory(view, m.parameters(copy=False)["layer.0.bias"]))
    # views hold the model's memory: of a model gone at once, or closed, they still show its weights
    ref = lens.Model(MODEL).parameters()
    views = lens.Model(MODEL).parameters(copy=False)
    other = lens.Model(MODEL)
    kept = other.parameters(copy=False)
    other.close()
    del other
    churn = [np.ones(50000) for _ in range(40)]
    check("views of a model no longer referenced, or closed, still show its weights",
          all(np.array_equal(views[k], ref[k]) and np.array_equal(kept[k], ref[k]) for k in ref) and len(churn) == 40)
    err = raises(lambda: m.predict(x, out=np.zeros((6, 2), np.float64)))
    check("predict(out=float64 array) raises instead of writing elsewhere", err is not None and "float32" in str(err))
    err = raises(lambda: m.predict(x, out=np.zeros((5, 2), np.float32)))
    check("predict(out=wrong shape) raises (%s)" % err, err is not None and err.code == 5)
    return x


def test_errors(tmp, sim, data):
    m = lens.Model(MODEL)
    missing = os.path.join(tmp, "nope.safetensors")
    rc, msg = cli_message("predict", "--model", missing, os.path.join(sim, "images.npy"))
    err = raises(lambda: lens.Model(missing))
    check("Model(missing file) raises LensError with lens predict's message (%r)" % msg, err is not None and rc == 1 and str(err) == msg)
    check("LensError carries the result code (IO) and its meaning", err is not None and err.code == 2 and "could not be opened" in err.reason)
    err = raises(lambda: m.predict(data.images[:, :3]))
    check("predict(3 bands into a 4-band model) raises the library's sentence (%s)" % err,
          err is not None and "has 3 band(s) but the model takes 4" in str(err) and err.code == 5)
    err = raises(lambda: m.predict(data.images[:, :, :60, :60]))
    check("predict(60x60 into a 66x66 model) raises a shape error naming both sizes (%s)" % err,
          err is not None and err.code == 5 and "60x60" in str(err) and "66x66" in str(err))
    err = raises(lambda: m.predict(np.zeros((2, 2, 4, 66, 66), np.float32)))
    check("predict(a 5-D array) raises", err is not None and err.code == 5)
    err = raises(lambda: m.predict(data.images, channels=[-1, 0, 1, 2]))
    check("predict(channels with a negative band) raises", err is not None and "-1" in str(err))
    err = raises(lambda: m.predict(np.array([["a"]])))
    check("predict(strings) raises", err is not None)
    bad = os.path.join(tmp, "bad.npy")
    with open(bad, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00garbage")
    rc, msg = cli_message("predict", "--model", MODEL, bad)
    err = raises(lambda: m.predict_file(bad))
    check("predict_file(a broken .npy) raises lens predict's message (%r)" % msg, err is not None and str(err) == msg)
    err = raises(lambda: lens.read(os.path.join(tmp, "absent.fits")))
    check("read(missing FITS) raises naming the file", err is not None and "absent.fits" in str(err))
    err = raises(lambda: m.explain(data.images[0], "occlusion", patch=-3))
    check("explain(patch=-3) raises naming the option (%s)" % err, err is not None and "patch must be" in str(err) and "-3" in str(err))
    try:
        m.explain(data.images[0], "occlusion", pach=3)
        err = None
    except TypeError as e:
        err = e
    check("explain(pach=3) raises TypeError naming explain, the keyword and those it takes (%s)" % err,
          err is not None and "explain()" in str(err) and "'pach'" in str(err) and "patch" in str(err) and "resize" in str(err))
    err = raises(lambda: m.predict_file([]))
    check("predict_file([]) raises LensError asking for a path (%s)" % err, err is not None and "at least one path" in str(err))
    # a python without NumPy: the import names the interpreter and how to get NumPy
    code = ("import sys; sys.modules['numpy'] = None; sys.path.insert(0, %r)\n"
            "try:\n    import lens\nexcept ImportError as e:\n    print(e)\n") % os.path.dirname(os.path.dirname(lens.__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    check("import lens without NumPy says what to install (%r)" % out.strip()[:80], "needs NumPy" in out and "python3-numpy" in out)
    m.close()
    err = raises(lambda: m.predict(data.images[:1]))
    check("a closed model raises instead of crashing", err is not None and "closed" in str(err))


def test_explain(tmp, sim, data):
    m = lens.Model(MODEL)
    if not lens.has_png:
        print("note: a build without PNG (NO_PNG=1): lens explain writes no maps, so explain is not compared with it")
        check("explain(gradcam) without PNG still computes a 4x4 map", m.explain(data.images[5], "gradcam").shape == (4, 4))
        return
    images = os.path.join(sim, "images.npy")
    cases = (("occlusion", [], {}), ("occlusion", ["--patch", 6, "--stride", 3, "--fill", 0.5], {"patch": 6, "stride": 3, "fill": 0.5}),
             ("gradcam", [], {}), ("gradcam", ["--layer", 20, "--target", 0], {"layer": 20, "target": 0}),
             ("saliency", [], {}), ("guided-gradcam", [], {}), ("ig", ["--steps", 8], {"steps": 8}),
             ("smoothgrad", ["--samples", 4, "--seed", 9], {"samples": 4, "seed": 9}))
    for k, (method, flags, kw) in enumerate(cases):
        out = os.path.join(tmp, "explain%d" % k)
        cli("explain", "--model", MODEL, "--input", images, "--index", 5, "--method", method, "--threads", 2, "--out", out, *flags)
        ref = np.load(os.path.join(out, method + ".npy"))
        got = m.explain(data.images[5], method, **kw)
        check("explain(%s, %s) equals lens explain's %s.npy bit for bit %s" % (method, kw, method, ref.shape), same(got, ref))
    # where Grad-CAM's cells lie: lens explain says it on stderr ("4x4 cells 4 pixels apart, centred on pixels 25.5 to 37.5")
    r = cli("explain", "--model", MODEL, "--input", images, "--index", 5, "--method", "gradcam", "--out", os.path.join(tmp, "explain_geo"))
    words = r.stderr.split("cells ")[1].split()
    step, first = float(words[0]), float(words[6])
    cam = np.load(os.path.join(tmp, "explain_geo", "gradcam.npy"))
    placed, inside = m.map_on_image(cam, "gradcam", smooth=False)
    centres = [int(first + i * step) for i in range(cam.shape[0])]
    check("map_on_image(gradcam): each cell's value at its centre as lens explain places it (step %g, first %g)" % (step, first),
          all(placed[centres[i], centres[j]] == cam[i, j] for i in range(cam.shape[0]) for j in range(cam.shape[1])))
    check("map_on_image(gradcam): the cells cover %d x %d pixels in the middle" % (cam.shape[0] * step, cam.shape[1] * step),
          inside.sum() == cam.size * step * step and inside[centres[0], centres[0]] and not inside[0, 0])
    err = raises(lambda: m.map_on_image(cam[:2, :2], "gradcam"))
    check("map_on_image(a map smaller than the cells) raises instead of reading past it", err is not None and err.code == 5)
    ref = np.load(os.path.join(tmp, "explain2", "gradcam.npy"))
    buf = np.full(ref.shape, np.nan, np.float32)
    check("explain(out=buf) writes buf in place", m.explain(data.images[5], "gradcam", out=buf) is buf and same(buf, ref))
    prepared = m.prepare(data.images[5])[0]
    check("explain(prepared=True) of a prepared image is the same map", same(m.explain(prepared, "gradcam", prepared=True), ref))
    vis = lens.Model("weights/OU_VIS.safetensors")
    two = np.stack([data.images[5][3], data.images[6][3]])  # [2, H, W]: two one-band images for OU_VIS
    err = raises(lambda: vis.explain(two, "gradcam", resize=True))
    check("explain([2, H, W]) for a one-band model raises (two images, as predict reads them) (%s)" % err,
          err is not None and err.code == 5 and "got 2" in str(err))
    check("default_layer('gradcam') is 27 for OU-66 (lensviz.h)", m.default_layer("gradcam") == 27)
    err = raises(lambda: m.explain(data.images[5], "nope"))
    check("explain(unknown method) raises naming the methods", err is not None and "occlusion" in str(err))
    rc, msg = cli_message("explain", "--model", MODEL, "--input", images, "--method", "gradcam", "--layer", 40, "--out", os.path.join(tmp, "x"))
    err = raises(lambda: m.explain(data.images[5], "gradcam", layer=40))
    check("explain(layer past the last) raises (%s)" % err, err is not None and rc == 2)
    err = raises(lambda: m.explain(data.images[5], "occlusion", patch=100))
    check("explain(occlusion patch larger than the input) raises (%s)" % err, err is not None and "does not fit" in str(err))


def scene_from_lenstronomy_kwargs(s):
    """samples/scene.json rebuilt through lens.scene from lenstronomy-style lists and kwargs."""
    def split(entries):
        return [e["type"] for e in entries], [{k: v for k, v in e.items() if k != "type"} for e in entries]
    lm, kl = split(s["lens"])
    llm, kll = split(s["lens_light"])
    slm, ks = split(s["source_light"])
    mp = s["multi_plane"]
    return lens.scene(s["grid"]["num_pix"], s["grid"]["pixel_scale"], s["grid"]["supersampling"], lens_model_list=lm, kwargs_lens=kl,
                      lens_light_model_list=llm, kwargs_lens_light=kll, source_light_model_list=slm, kwargs_source=ks,
                      kwargs_psf={"psf_type": s["psf"]["type"], "fwhm": s["psf"]["fwhm"]}, cosmology=s["cosmology"],
                      lens_redshift_list=mp["lens_redshifts"], z_source=mp["z_source"], z_source_convention=mp["z_source_convention"],
                      source_redshift_list=mp["source_redshifts"], kind=s["kind"])


def test_render(tmp):
    with open("samples/scene.json") as f:
        s = json.load(f)
    built = scene_from_lenstronomy_kwargs(s)
    check("lens.scene(lenstronomy kwargs) rebuilds samples/scene.json", built == s)
    plain, noisy, dbl = (os.path.join(tmp, n) for n in ("plain.npy", "noisy.npy", "double.npy"))
    cli("render", "samples/scene.json", "--out", plain)
    cli("render", "samples/scene.json", "--band", "VIS", "--seed", 7, "--out", noisy)
    cli("render", "samples/scene.json", "--double", "--out", dbl)
    check("render(scene from kwargs) equals lens render bit for bit", same(lens.render(built), np.load(plain)))
    check("render(band='VIS', seed=7) equals lens render --band VIS --seed 7", same(lens.render(built, band="VIS", seed=7), np.load(noisy)))
    check("render('samples/scene.json', double=True) equals lens render --double", same(lens.render("samples/scene.json", double=True), np.load(dbl)))
    # a scene written from Python, rendered by both from the same JSON file
    mine = lens.scene(64, 0.08, 2, lens_model_list=["SIE", "SHEAR"],
                      kwargs_lens=[{"theta_E": 1.1, "e1": 0.12, "e2": -0.05, "center_x": 0.05, "center_y": -0.02},
                                   {"gamma1": np.float64(0.03), "gamma2": -0.02}],
                      source_light_model_list=["SERSIC_ELLIPSE"],
                      kwargs_source=[{"amp": 30.0, "R_sersic": 0.2, "n_sersic": 1.5, "e1": 0.1, "e2": 0.05, "center_x": 0.1, "center_y": 0.05}],
                      lens_light_model_list=["SERSIC_ELLIPSE"],
                      kwargs_lens_light=[{"amp": 10.0, "R_sersic": 0.6, "n_sersic": 4.0, "e1": 0.1, "e2": -0.05, "center_x": 0.05, "center_y": -0.02}],
                      psf={"type": "GAUSSIAN", "fwhm": 0.16})
    path = os.path.join(tmp, "mine.json")
    with open(path, "w") as f:
        json.dump(mine, f, default=float)
    out = os.path.join(tmp, "mine.npy")
    cli("render", path, "--band", "HST_F160W", "--seed", 3, "--out", out)
    buf = np.zeros((64, 64), np.float32)
    got = lens.render(mine, band="HST_F160W", seed=3, out=buf)
    check("render(a Python scene, HST_F160W noise) equals lens render of its JSON", same(buf, np.load(out)) and got is buf)
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        json.dump(lens.scene(20, 0.1, lens_model_list=["SIE"], kwargs_lens=[{"e1": 0.1}]), f)
    rc, msg = cli_message("render", bad, "--out", os.path.join(tmp, "bad.npy"))
    err = raises(lambda: lens.render(bad))
    check("render(scene missing theta_E) raises lens render's sentence (%r)" % msg, err is not None and msg == "%s: %s" % (bad, err))
    rc, msg = cli_message("render", os.path.join(tmp, "absent.json"), "--out", os.path.join(tmp, "absent.npy"))
    err = raises(lambda: lens.render(os.path.join(tmp, "absent.json")))
    check("render(a missing scene file) raises lens render's sentence (%r)" % msg, err is not None and str(err) == msg)
    err = raises(lambda: lens.render(built, band="XX"))
    check("render(unknown band) raises naming the bands", err is not None and "VIS" in str(err))
    err = raises(lambda: lens.scene(20, 0.1, lens_model_list=["SIE", "SHEAR"], kwargs_lens=[{"theta_E": 1}]))
    check("scene(2 models, 1 dict) raises", err is not None)
    nan_scene = lens.scene(20, 0.1, lens_model_list=["SIE"], kwargs_lens=[{"theta_E": float("nan"), "e1": 0.1}])
    err = raises(lambda: lens.render(nan_scene))
    check("render(a NaN theta_E) raises naming it (%s)" % err, err is not None and "theta_E" in str(err) and "nan" in str(err))


def test_train(tmp, sim, data):
    arch = os.path.join(tmp, "small.arch")
    with open(arch, "w") as f:
        f.write("input 4 66 66\nconv2d name=conv out=6 kernel=5 stride=2\nrelu\nmaxpool kernel=2\ndropout p=0.2\n"
                "conv2d name=conv2 out=8 kernel=3\nrelu\nmaxpool kernel=2\nflatten\ndense name=fc out=2\n")
    settings = ["--epochs", 3, "--batch", 8, "--lr", 0.003, "--seed", 5, "--augment", "flip,rot90", "--class-weights", "auto",
                "--schedule", "cosine", "--minmax"]
    run1 = os.path.join(tmp, "train_cli")
    r = cli("train", "--arch", arch, "--data", os.path.join(sim, "images.npy"), "--labels", os.path.join(sim, "labels.csv"),
            "--threads", 2, "--out", run1, *settings)
    check("lens train ran (exit %d)" % r.returncode, r.returncode == 0)
    m = lens.Model.create(arch, seed=5)
    seen = []
    run2 = os.path.join(tmp, "train_py")
    history = lens.train(m, data.images, data.classes, out=run2, progress=lambda p: seen.append(p), epochs=3, batch=8, lr=0.003, seed=5,
                         augment="flip,rot90", class_weights="auto", schedule="cosine", minmax=True)
    a = lens.Model(os.path.join(run1, "best.safetensors")).parameters()
    b = lens.Model(os.path.join(run2, "best.safetensors")).parameters()
    check("train: best.safetensors weights equal lens train's bit for bit", sorted(a) == sorted(b) and all(same(a[k], b[k]) for k in a))
    c = m.parameters()
    d = lens.Model(os.path.join(run1, "checkpoint.safetensors")).parameters()
    check("train: the model trained in place holds lens train's last weights", all(same(c[k], d[k]) for k in d))

    def table(path):
        with open(path) as f:
            return [row[:-1] for row in csv.reader(f)]  # all but the seconds column
    t1, t2 = table(os.path.join(run1, "history.csv")), table(os.path.join(run2, "history.csv"))
    check("train: history.csv equals lens train's (but the seconds)", t1 == t2 and len(t1) == 4)
    check("train: the returned history holds history.csv's losses",
          len(history) == 3 and all("%.6f" % h["train_loss"] == row[2] and "%.6f" % h["val_loss"] == row[4] for h, row in zip(history, t1[1:])))
    check("train: the progress function saw each epoch end", [p["epoch"] for p in seen if p["epoch_done"]] == [1, 2, 3])
    check("train: the trained model says preprocess=minmax", lens.Model(os.path.join(run2, "best.safetensors")).preprocess == "minmax")
    # fine-tuning keeps the model's scaling unless minmax= says otherwise, as lens train --init does
    tuned = lens.Model(os.path.join(run2, "best.safetensors"))
    lens.train(tuned, data.images, data.classes, epochs=1, batch=8, seed=5, progress=False)
    kept = lens.Model(os.path.join(run2, "best.safetensors"))
    lens.train(kept, data.images, data.classes, epochs=1, batch=8, seed=5, minmax=True, progress=False)
    unscaled = lens.Model(os.path.join(run2, "best.safetensors"))
    lens.train(unscaled, data.images, data.classes, epochs=1, batch=8, seed=5, minmax=False, progress=False)
    p1, p2, p3 = tuned.parameters(), kept.parameters(), unscaled.parameters()
    check("train(a min-max model): fine-tuned on min-max scaled images, as with minmax=True, and says so",
          tuned.preprocess == "minmax" and all(same(p1[k], p2[k]) for k in p1))
    check("train(a min-max model, minmax=False): on the values as they are",
          unscaled.preprocess == "none" and not all(same(p1[k], p3[k]) for k in p1))
    m2 = lens.Model.create(arch, seed=5)
    batches = []
    h = lens.train(m2, data.images, data.classes, progress=lambda p: batches.append(p) or p["epoch_done"], every_batch=True, epochs=3,
                   batch=8, seed=5)
    check("train(every_batch): called per batch; a true return stops after the epoch (%d epochs ran)" % len(h),
          len(h) == 1 and sum(1 for p in batches if not p["epoch_done"]) >= 2)

    def boom(p):
        raise ValueError("from the callback")
    try:
        lens.train(lens.Model.create(arch), data.images, data.classes, progress=boom, epochs=2, batch=8)
        got = None
    except ValueError as e:
        got = e
    check("train: an exception in the progress function reaches the caller", got is not None and "callback" in str(got))
    rc, msg = cli_message("train", "--data", os.path.join(sim, "images.npy"), "--labels", os.path.join(sim, "labels.csv"),
                          "--out", os.path.join(tmp, "t3"), "--optimizer", "adamx")
    err = raises(lambda: lens.train(lens.Model.create(arch), data.images, data.classes, optimizer="adamx", progress=False))
    check("train(optimizer='adamx') raises lens train's sentence (%r)" % msg, err is not None and msg == "--optimizer: %s" % err)
    err = raises(lambda: lens.train(lens.Model.create(arch), data.images, data.classes, nonsense=1, progress=False))
    check("train(an unknown setting) raises naming it", err is not None and "nonsense" in str(err))
    err = raises(lambda: lens.train(lens.Model.create(arch), data.images, data.classes[:5], progress=False))
    check("train(5 labels for 24 images) raises", err is not None and err.code == 5)
    err = raises(lambda: lens.train(lens.Model.create("ou66", bands=3), data.images, data.classes, epochs=1, progress=False))
    check("train(4-band images into a 3-band model) raises the library's message (%s)" % err, err is not None and err.code == 5)
    # regression (lens train --task regress): the same weights, and the targets as lens predict's CSV
    reg_arch = os.path.join(tmp, "reg.arch")
    with open(reg_arch, "w") as f:
        f.write("input 4 66 66\nconv2d name=conv out=4 kernel=5 stride=2\nrelu\nmaxpool kernel=4\nflatten\ndense name=fc out=4\n")
    reg1, reg2 = os.path.join(tmp, "reg_cli"), os.path.join(tmp, "reg_py")
    cli("train", "--task", "regress", "--targets", "theta_E,e1", "--loss", "nll", "--arch", reg_arch, "--data", os.path.join(sim, "images.npy"),
        "--labels", os.path.join(sim, "labels.csv"), "--epochs", 2, "--batch", 8, "--seed", 3, "--minmax", "--threads", 2, "--out", reg1)
    targets = np.array([[row["theta_E"], row["e1"]] for row in data.labels])
    rm = lens.Model.create(reg_arch, classes=None, outputs=4, seed=3)
    lens.train(rm, data.images, targets, target_names=["theta_E", "e1"], loss="nll", epochs=2, batch=8, seed=3, minmax=True, out=reg2,
               progress=False)
    a = lens.Model(os.path.join(reg1, "best.safetensors")).parameters()
    b = lens.Model(os.path.join(reg2, "best.safetensors")).parameters()
    check("train(regression targets, nll): lens train --task regress's weights bit for bit", all(same(a[k], b[k]) for k in a))
    reg_csv = os.path.join(tmp, "reg.csv")
    cli("predict", "--model", os.path.join(reg1, "best.safetensors"), os.path.join(sim, "images.npy"), "--out", reg_csv)
    rows = list(csv.DictReader(open(reg_csv)))
    r = lens.Model(os.path.join(reg2, "best.safetensors")).regress(data.images)
    close = lambda text, v: abs(float(text) - v) <= 5e-7 * abs(v) + 1e-12
    check("regress: each target's mean and sigma as lens predict's CSV (%s)" % r.names,
          r.names == ["theta_E", "e1"] and len(rows) == 24 and
          all(close(row[n], r.mean[i, j]) and close(row[n + "_sigma"], r.sigma[i, j]) for i, row in enumerate(rows) for j, n in enumerate(r.names)))
    err = raises(lambda: lens.Model(MODEL).regress(data.images))
    check("regress on a classifier raises the library's sentence (%s)" % err, err is not None and "regress.targets" in str(err))
    quiet = lens.train(lens.Model.create(arch), data.images, data.classes, epochs=1, batch=8, progress=False)
    check("train(progress=False) is silent and still returns the history", len(quiet) == 1 and quiet[0]["epoch"] == 1)
    check("settings() lists lensnet_fit's settings", {"epochs", "lr", "augment", "seed"} <= set(lens.settings()))


def test_pictures(tmp, data):
    rgb = lens.composite(data.images[0], size=198)
    check("composite: a 198x198 RGB picture", rgb.shape == (198, 198, 3) and rgb.dtype == np.uint8 and rgb.max() > 0)
    cam = lens.Model(MODEL).explain(data.images[0], "gradcam")
    pic = lens.overlay(rgb, cam, "magma")
    check("colorize and overlay: pictures of the map", lens.colorize(cam, 99).shape == (99, 99, 3) and pic.shape == rgb.shape)
    err = raises(lambda: lens.Model(MODEL).explain(data.images[0], "smoothgrad", noise=-1.0))
    check("explain with a negative noise raises instead of taking the default (%s)" % err, err is not None and "noise" in str(err))
    err = raises(lambda: lens.overlay(rgb / 255.0, cam))
    check("overlay of a float picture raises instead of drawing it black (%s)" % err, err is not None and "uint8" in str(err))
    err = raises(lambda: lens.overlay(rgb.astype(np.int32) + 100, cam))
    check("overlay of values beyond 255 raises instead of wrapping them (%s)" % err, err is not None and "0..255" in str(err))
    if lens.has_png:
        path = os.path.join(tmp, "pic.png")
        lens.write_png(path, np.hstack([rgb, pic]))
        with open(path, "rb") as f:
            check("write_png writes a PNG file", f.read(8) == b"\x89PNG\r\n\x1a\n")
        err = raises(lambda: lens.write_png(os.path.join(tmp, "no", "such", "dir", "x.png"), rgb))
        check("write_png into a missing folder raises", err is not None)
    bad = os.path.join(tmp, "bad.png")
    err = raises(lambda: lens.write_png(bad, rgb / 255.0))
    check("write_png(a float picture in [0, 1]) raises instead of writing black (%s)" % err,
          err is not None and "uint8" in str(err) and "float64" in str(err) and not os.path.exists(bad))
    err = raises(lambda: lens.write_png(bad, np.full((4, 4, 3), 300)))
    check("write_png(ints up to 300) raises instead of wrapping them (%s)" % err,
          err is not None and "0..255" in str(err) and "300" in str(err) and not os.path.exists(bad))
    if lens.has_png:
        lens.write_png(bad, rgb.astype(np.int64))
        check("write_png(int64 values 0..255) writes them", os.path.exists(bad))
    err = raises(lambda: lens.colorize(cam, cmap="nope"))
    check("colorize(unknown colour map) raises", err is not None and "viridis" in str(err))


def main():
    with tempfile.TemporaryDirectory(prefix="lens_test_python.") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test_module(tmp)
            sim, data = test_simulate(tmp)
            test_predict(tmp, sim, data)
            test_errors(tmp, sim, data)
            test_explain(tmp, sim, data)
            test_render(tmp)
            test_train(tmp, sim, data)
            test_pictures(tmp, data)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
