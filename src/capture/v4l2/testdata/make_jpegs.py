#!/usr/bin/env python3
"""Generates the JPEG fixtures for the V4L2 conversion tests in ../convert.rs.

Run from this directory:  python3 make_jpegs.py   (needs Pillow: pip install pillow)

The images are tiny and made of flat colour blocks aligned to 8x8 DCT blocks so that the
decoded colours are known (the source colours) up to JPEG quantisation error at quality 95.
Pillow encodes with libjpeg's standard Huffman tables (optimize=False), which are the same
tables as JPEG Annex K.3 that UVC cameras leave out; so the copy with its DHT segments removed
must decode to exactly the same pixels once the decoder inserts the default tables.
"""

from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def blocks(size, mode, colours, block_w):
    """An image of vertical bars `block_w` wide, one per colour, left to right."""
    img = Image.new(mode, size)
    px = img.load()
    for x in range(size[0]):
        for y in range(size[1]):
            px[x, y] = colours[x // block_w]
    return img


def strip_dht(data: bytes) -> bytes:
    """Removes every DHT (FF C4) segment before the first SOS, like a UVC camera's MJPEG frame."""
    assert data[:2] == b"\xff\xd8"
    out = bytearray(data[:2])
    i = 2
    while True:
        assert data[i] == 0xFF
        marker = data[i + 1]
        length = (data[i + 2] << 8) | data[i + 3]
        segment = data[i : i + 2 + length]
        if marker == 0xDA:  # SOS: the rest is entropy-coded data and the trailer
            out += data[i:]
            return bytes(out)
        if marker != 0xC4:
            out += segment
        i += 2 + length


def main():
    # 32x16, 4:2:2 (the usual UVC MJPEG subsampling): red, green, blue, white bars 8 px wide.
    bars = blocks((32, 16), "RGB", [RED, GREEN, BLUE, WHITE], 8)
    bars.save("bars422.jpg", quality=95, subsampling=1, optimize=False)
    with open("bars422.jpg", "rb") as f:
        data = f.read()
    with open("bars422_nodht.jpg", "wb") as f:
        f.write(strip_dht(data))

    # 16x8, 4:4:4: red block then blue block, each one 8x8 DCT block.
    blocks((16, 8), "RGB", [RED, BLUE], 8).save(
        "rb444.jpg", quality=95, subsampling=0, optimize=False
    )

    # 16x8 greyscale (one component): 64 then 192.
    blocks((16, 8), "L", [64, 192], 8).save("gray.jpg", quality=95, optimize=False)

    # 16x8 CMYK (four components, Adobe APP14): pure red ink mix, then 50 % black only.
    blocks((16, 8), "CMYK", [(0, 255, 255, 0), (0, 0, 0, 128)], 8).save(
        "cmyk.jpg", quality=95, optimize=False
    )


if __name__ == "__main__":
    main()
