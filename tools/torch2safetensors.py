#!/usr/bin/env python3
"""Convert a PyTorch checkpoint of a lens finder to a safetensors file that lensnet.h loads.

    python3 tools/torch2safetensors.py CHECKPOINT.pt OUT.safetensors --arch ou66 --bands 4
    python3 tools/torch2safetensors.py resnet18.pt out.safetensors --arch resnet18 --input-size 64 --classes a,b,c
    python3 tools/torch2safetensors.py model.pt out.safetensors --arch-file my_arch.txt

CHECKPOINT may hold a state_dict, a whole pickled model, or a dict with a "state_dict" or
"model_state_dict" entry (common training-script layouts). Tensors are written as float32
little-endian under their state_dict names; Wilde et al.'s "VIS_layer." prefix becomes
"layer.". The metadata records the architecture (a built-in name with its band count, or the
text of --arch-file), the input size, the class names and, when given, the band names and
the pixel scale, so `lens info OUT.safetensors` describes it and
`lens predict --model OUT.safetensors ...` runs it. A torchvision resnet18 / resnet34 state_dict
converts as it is (--arch resnet18; its fc layer sets the number of outputs, num_batches_tracked
is dropped); --input-size says what size the built-ins resnet18, resnet34 and p4cnn take.

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
    ap.add_argument("--arch", help="built-in architecture: ou66, ou200, resnet18, resnet34 or p4cnn")
    ap.add_argument("--bands", type=int, help="input bands of the built-in architecture (default: from its first weight)")
    ap.add_argument("--input-size", type=int, help="input height and width of resnet18, resnet34 and p4cnn (default 224, 224, 64)")
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
        sizes = {"ou66": 66, "ou200": 200, "resnet18": 224, "resnet34": 224, "p4cnn": 64}
        first = {"ou66": "layer.0.weight", "ou200": "layer.0.weight", "resnet18": "conv1.weight", "resnet34": "conv1.weight",
                 "p4cnn": "lift.weight"}
        if args.arch not in sizes:
            raise SystemExit("--arch must be ou66, ou200, resnet18, resnet34 or p4cnn (or give --arch-file)")
        if first[args.arch] not in tensors:
            raise SystemExit(f"{args.checkpoint} has no {first[args.arch]}: not a {args.arch}")
        bands = args.bands or int(tensors[first[args.arch]].shape[1])
        size = args.input_size if args.input_size and args.arch not in ("ou66", "ou200") else sizes[args.arch]
        meta.update({"arch": args.arch, "bands": str(bands), "input_size": str(size)})
    else:
        raise SystemExit("give --arch ou66|ou200|resnet18|resnet34|p4cnn or --arch-file FILE")

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
