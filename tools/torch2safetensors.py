#!/usr/bin/env python3
"""Convert a PyTorch checkpoint of a lens finder to a safetensors file that lensnet.h loads.

    python3 tools/torch2safetensors.py CHECKPOINT.pt OUT.safetensors --arch ou66 --bands 4
    python3 tools/torch2safetensors.py model.pt out.safetensors --arch-file my_arch.txt

CHECKPOINT may hold a state_dict, a whole pickled model, or a dict with a "state_dict" or
"model_state_dict" entry (common training-script layouts). Tensors are written as float32
little-endian under their state_dict names; Wilde et al.'s "VIS_layer." prefix becomes
"layer.". The metadata records the architecture (a built-in name with its band count, or the
text of --arch-file), the input size, the class names and, when given, the band names and
the pixel scale, so `lens info OUT.safetensors` describes it and
`lens predict --model OUT.safetensors ...` runs it.

Needs PyTorch (Debian: apt-get install python3-torch); it writes the safetensors format itself
(8-byte little-endian header length, JSON header, raw data), so the safetensors package is not
needed.
"""
import argparse
import json
import struct
import sys

import torch


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        return obj
    raise SystemExit(f"{path}: not a state_dict, a model or a training checkpoint")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--arch", help="built-in architecture: ou66 or ou200")
    ap.add_argument("--bands", type=int, help="input bands of the built-in architecture (default: from layer.0.weight)")
    ap.add_argument("--arch-file", help="architecture text for lensnet.h instead of a built-in")
    ap.add_argument("--classes", default="non-lens,lens")
    ap.add_argument("--band-names", help="the input bands in channel order, e.g. J,Y,H,VIS (metadata band_names)")
    ap.add_argument("--pixel-scale", type=float, help="arcseconds per pixel of the model's input (metadata pixel_scale)")
    args = ap.parse_args()

    state = load_state_dict(args.checkpoint)
    tensors = {}
    for name, value in state.items():
        if not torch.is_tensor(value):
            continue
        name = name.replace("VIS_layer.", "layer.")
        if name.startswith("module."):          # saved from nn.DataParallel
            name = name[len("module."):]
        if name.endswith("num_batches_tracked"):
            continue
        tensors[name] = value.detach().to(torch.float32).contiguous().cpu()

    meta = {"classes": args.classes, "source": f"converted from {args.checkpoint}"}
    if args.band_names:
        meta["band_names"] = args.band_names
    if args.pixel_scale:
        meta["pixel_scale"] = "%g" % args.pixel_scale
    if args.arch_file:
        meta["arch"] = open(args.arch_file).read()
    elif args.arch:
        if args.arch not in ("ou66", "ou200"):
            raise SystemExit("--arch must be ou66 or ou200 (or give --arch-file)")
        bands = args.bands or int(tensors["layer.0.weight"].shape[1])
        meta.update({"arch": args.arch, "bands": str(bands), "input_size": "66" if args.arch == "ou66" else "200"})
    else:
        raise SystemExit("give --arch ou66|ou200 or --arch-file FILE")

    header = {"__metadata__": meta}
    offset = 0
    blobs = []
    for name, t in tensors.items():
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    import os
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(tensors)} tensors, {offset // 4} values", file=sys.stderr)


if __name__ == "__main__":
    main()
