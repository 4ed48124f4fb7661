#!/usr/bin/env python3
"""Rebuilds tests/data from the full reference set (default ../shared), keeping only what the
tests read. Plain Python 3, no NumPy: a .npy subset is the header rewritten with the new shape
and the leading bytes of the data (C order, so the first k images are the first k * image bytes).

    python3 tests/data/make_data.py [--shared ../shared] [--out tests/data]

Every subset is checked after writing: its header parses to the new shape and its data bytes
equal the same slice of the original file. The READMEs are written by hand, not by this script.
"""
import argparse
import ast
import json
import os
import shutil
import struct
import sys

WILDE_WHOLE = [
    "inputs_66.npy",  # [6,4,66,66]: all six images feed five finders' logits and the batch test
    "logits_OU_66.npy", "logits_OU_J.npy", "logits_OU_Y.npy", "logits_OU_H.npy", "logits_OU_JYH.npy",
    "saliency_OU_66.npy", "guidedbp_OU_66.npy", "gradcam_OU_66_layer27.npy", "occlusion_OU_66_p1s1.npy",
    "gradcam_OU_200_layer20.npy", "occlusion_OU_200_p4s4.npy",
    # one noisy image per size [1,4,H,W] and the input gradients of it [4,H,W]: where OU-200's
    # saliency and guided backprop are compared (its clean image puts max-pool windows on ties)
    "inputs_66_noisy.npy", "saliency_OU_66_noisy.npy", "guidedbp_OU_66_noisy.npy",
    "inputs_200_noisy.npy", "saliency_OU_200_noisy.npy", "guidedbp_OU_200_noisy.npy",
]
# first image only: [3,4,200,200] -> [1,4,200,200] and its logits [3,2] -> [1,2]
WILDE_FIRST = ["inputs_200.npy", "logits_OU_200.npy", "logits_OU_VIS.npy"]

FITS = ["arange.fits", "blank.fits", "compressed_image.fits", "fixed-1890.fits", "o4sp040b0_raw.fits",
        "scale.fits", "test0.fits"]

# Lens Finding Challenge 1: the cutouts the tests name, and at least one in every folder
LENS_IDS = ["100002", "100003", "100014"]  # ground-based lens objects, all four bands
BOLOGNA = (
    ["space_based/lens/imageEUC_VIS-%s.fits" % i for i in ("100002", "100003")]
    + ["space_based/nolens/imageEUC_VIS-%s.fits" % i for i in ("100004", "100012")]
    + ["ground_based/lens/Band%d/imageSDSS_%s-%s.fits" % (b, f, i)
       for b, f in ((1, "R"), (2, "I"), (3, "G"), (4, "U")) for i in LENS_IDS]
    + ["ground_based/nolens/Band%d/imageSDSS_%s-100004.fits" % (b, f)
       for b, f in ((1, "R"), (2, "I"), (3, "G"), (4, "U"))]
)


def npy_parse(raw):
    if raw[:6] != b"\x93NUMPY":
        raise ValueError("not a .npy file")
    major = raw[6]
    if major == 1:
        hlen, start = struct.unpack("<H", raw[8:10])[0], 10
    else:
        hlen, start = struct.unpack("<I", raw[8:12])[0], 12
    header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    return header, start + hlen


def npy_bytes(descr, shape, data):
    dims = ", ".join("%d" % s for s in shape) + ("," if len(shape) == 1 else "")
    text = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    pad = (64 - (10 + len(text) + 1) % 64) % 64
    head = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + data


def first_images(src, dst, k):
    raw = open(src, "rb").read()
    header, off = npy_parse(raw)
    assert not header["fortran_order"] and header["descr"] == "<f4", src
    shape = list(header["shape"])
    per = 4
    for s in shape[1:]:
        per *= s
    data = raw[off:off + k * per]
    out = npy_bytes(header["descr"], [k] + shape[1:], data)
    with open(dst, "wb") as f:
        f.write(out)
    # verify what was written
    back = open(dst, "rb").read()
    h2, off2 = npy_parse(back)
    assert list(h2["shape"]) == [k] + shape[1:], (dst, h2)
    assert h2["descr"] == header["descr"] and not h2["fortran_order"]
    assert off2 % 64 == 0 and back[off2:] == raw[off:off + k * per] and len(back) - off2 == k * per, dst
    print("%s: %s -> %s (%d bytes)" % (os.path.basename(dst), tuple(shape), tuple(h2["shape"]), len(back)))


def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    assert open(src, "rb").read() == open(dst, "rb").read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="tests/data")
    a = ap.parse_args()
    ref, data, out = os.path.join(a.shared, "reference"), os.path.join(a.shared, "data"), a.out

    os.makedirs(os.path.join(out, "wilde2022"), exist_ok=True)
    for name in WILDE_WHOLE:
        copy(os.path.join(ref, "wilde2022", name), os.path.join(out, "wilde2022", name))
    for name in WILDE_FIRST:
        first_images(os.path.join(ref, "wilde2022", name), os.path.join(out, "wilde2022", name), 1)

    src = os.path.join(ref, "lenstronomy")
    for name in sorted(os.listdir(src)):
        if name.endswith(".json") or name.endswith(".npy"):
            copy(os.path.join(src, name), os.path.join(out, "lenstronomy", name))

    for name in FITS:
        copy(os.path.join(data, "fits", name), os.path.join(out, "fits", name))
    for rel in BOLOGNA:
        copy(os.path.join(data, "bologna-challenge1", rel), os.path.join(out, "bologna-challenge1", rel))

    # the manifest of astropy's values, for the files kept (keys are paths under tests/data)
    manifest = json.load(open(os.path.join(data, "fits", "MANIFEST.json")))
    kept = {k: v for k, v in manifest.items()
            if k.startswith("fits/") or k[len("bologna-challenge1/"):] in BOLOGNA}
    dropped = sorted(set(manifest) - set(kept))
    with open(os.path.join(out, "fits", "MANIFEST.json"), "w") as f:
        f.write(json.dumps(kept, indent=1) + "\n")
    for k in kept:
        assert os.path.exists(os.path.join(out, k)), k
    print("MANIFEST.json: %d of %d files kept; not kept: %s" % (len(kept), len(manifest), ", ".join(dropped) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
