#!/bin/sh
# Remakes the tile-compressed test files here from images made by tests/test_formats
# (--write-image) with fpack, and their references with funpack or imcopy (Debian's
# libcfitsio-bin).
# The floating-point files' dither seed (ZDITHER0) comes from the clock, so a remade file differs
# from the stored one in its bytes, not in what it tests. Run from the repository's root after
# `make build/test_formats`.
set -e
out=tests/data/fits/compressed
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
make_one() { # name bitpix nx ny nz seed bzero fpack-options...
  name=$1; shift
  build/test_formats --write-image "$t/$name.fits" "$1" "$2" "$3" "$4" "$5" "$6"
  shift 6
  rm -f "$out/$name.fits.fz" "$out/$name.funpack.fits"
  fpack "$@" -O "$out/$name.fits.fz" "$t/$name.fits"
  [ "$name" = hcompress_float ] || funpack -O "$out/$name.funpack.fits" "$out/$name.fits.fz"
}
make_one rice_int16_tiles 16 61 47 1 1 32768 -t 16,16
make_one rice_uint8 8 37 29 1 2 0
make_one rice_cube 16 20 18 4 3 0 -t 8,8,2
make_one rice_float_dither1 -32 64 50 1 4 0 -q 4
make_one rice_float_dither2 -32 64 50 1 5 0 -qz 4
make_one gzip2_int32_tiles 32 40 33 1 6 0 -g2 -t 8,8
make_one gzip1_float64 -64 30 20 1 7 0 -g -q 0
make_one hcompress_float -32 64 50 1 8 0 -h
# quantised floats in 20 x 20 tiles: funpack 1.7.0 unpacks these (with their NaN pixels) wrongly (README.md), imcopy right
make_one rice_float_tiles2d -32 64 50 1 9 0 -q 1 -t 20,20
rm -f "$out/rice_float_tiles2d.funpack.fits" "$out/rice_float_tiles2d.imcopy.fits"
imcopy "$out/rice_float_tiles2d.fits.fz" "$out/rice_float_tiles2d.imcopy.fits"
rm -f "$out/compressed_image.funpack.fits"
funpack -O "$out/compressed_image.funpack.fits" tests/data/fits/compressed_image.fits
ls -l "$out"
