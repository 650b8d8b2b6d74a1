#!/usr/bin/env python3
"""Render a `tmux capture-pane -e -p` dump (text with SGR colour escapes) to a PNG.

Each cell is drawn on a fixed grid with DejaVu Sans Mono, so the image is exactly what
the terminal showed. Usage: render.py CAPTURE.ans OUT.png [--cols N] [--rows N]
"""
import argparse
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
FONT_SIZE = 15
BG = (24, 25, 33)
FG = (212, 214, 222)
# The 16 ANSI colours (a dark theme close to common terminal defaults).
PALETTE16 = [
    (40, 42, 54), (230, 80, 80), (120, 210, 110), (230, 200, 90),
    (100, 150, 240), (200, 120, 220), (90, 200, 210), (200, 202, 210),
    (100, 104, 120), (255, 110, 110), (150, 240, 140), (255, 230, 120),
    (140, 180, 255), (230, 150, 250), (120, 230, 240), (250, 250, 252),
]


def xterm256(n):
    if n < 16:
        return PALETTE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


class Style:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = False
        self.dim = False
        self.italic = False
        self.underline = False
        self.reverse = False

    def copy(self):
        s = Style()
        s.__dict__.update(self.__dict__)
        return s

    def apply(self, params):
        nums = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")] or [0]
        i = 0
        while i < len(nums):
            n = nums[i]
            if n == 0:
                self.reset()
            elif n == 1:
                self.bold = True
            elif n == 2:
                self.dim = True
            elif n == 3:
                self.italic = True
            elif n == 4:
                self.underline = True
            elif n == 7:
                self.reverse = True
            elif n == 22:
                self.bold = self.dim = False
            elif n == 23:
                self.italic = False
            elif n == 24:
                self.underline = False
            elif n == 27:
                self.reverse = False
            elif 30 <= n <= 37:
                self.fg = PALETTE16[n - 30]
            elif 90 <= n <= 97:
                self.fg = PALETTE16[n - 90 + 8]
            elif 40 <= n <= 47:
                self.bg = PALETTE16[n - 40]
            elif 100 <= n <= 107:
                self.bg = PALETTE16[n - 100 + 8]
            elif n == 39:
                self.fg = None
            elif n == 49:
                self.bg = None
            elif n in (38, 48) and i + 1 < len(nums):
                if nums[i + 1] == 5 and i + 2 < len(nums):
                    colour = xterm256(nums[i + 2])
                    i += 2
                elif nums[i + 1] == 2 and i + 4 < len(nums):
                    colour = tuple(nums[i + 2:i + 5])
                    i += 4
                else:
                    colour = None
                if n == 38:
                    self.fg = colour
                else:
                    self.bg = colour
            i += 1


SGR = re.compile(r"\x1b\[([0-9;:]*)m|\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def parse(text, cols, rows):
    grid = []
    style = Style()
    for line in text.split("\n")[:rows]:
        cells = []
        pos = 0
        for m in SGR.finditer(line):
            for ch in line[pos:m.start()]:
                cells.append((ch, style.copy()))
            if m.group(1) is not None or m.group(0).endswith("m"):
                style.apply(m.group(1) or "")
            pos = m.end()
        for ch in line[pos:]:
            cells.append((ch, style.copy()))
        grid.append(cells[:cols])
    while len(grid) < rows:
        grid.append([])
    return grid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=32)
    args = ap.parse_args()
    text = open(args.capture, encoding="utf-8", errors="replace").read()
    grid = parse(text, args.cols, args.rows)
    fonts = {
        (False, False): ImageFont.truetype(FONT_DIR + "DejaVuSansMono.ttf", FONT_SIZE),
        (True, False): ImageFont.truetype(FONT_DIR + "DejaVuSansMono-Bold.ttf", FONT_SIZE),
        (False, True): ImageFont.truetype(FONT_DIR + "DejaVuSansMono-Oblique.ttf", FONT_SIZE),
        (True, True): ImageFont.truetype(FONT_DIR + "DejaVuSansMono-BoldOblique.ttf", FONT_SIZE),
    }
    regular = fonts[(False, False)]
    cell_w = round(regular.getlength("M"))
    ascent, descent = regular.getmetrics()
    cell_h = ascent + descent + 2
    pad = 12
    img = Image.new("RGB", (args.cols * cell_w + 2 * pad, args.rows * cell_h + 2 * pad), BG)
    draw = ImageDraw.Draw(img)
    for y, row in enumerate(grid):
        for x, (ch, st) in enumerate(row):
            fg = st.fg or FG
            bg = st.bg
            if st.reverse:
                fg, bg = (bg or BG), fg
            if st.dim:
                fg = tuple(int(c * 0.6 + b * 0.4) for c, b in zip(fg, BG))
            left = pad + x * cell_w
            top = pad + y * cell_h
            if bg is not None:
                draw.rectangle([left, top, left + cell_w - 1, top + cell_h - 1], fill=bg)
            if ch.strip():
                draw.text((left, top + 1), ch, font=fonts[(st.bold, st.italic)], fill=fg)
            if st.underline:
                draw.line([left, top + cell_h - 2, left + cell_w - 1, top + cell_h - 2], fill=fg)
    img.save(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
