"""Screenshot of a page written by ``vtrbench browse`` (headless Chromium), e.g. for the README:

vtrbench demo --output demo --videos 96 --epochs 40 --seeds 0,1 --heads meanp,seqtransf,camoe --losses infonce
python tools/browse_screenshot.py demo/site/index.html docs/browse.png --height 2400
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    from vtrbench.browse.chromium import screenshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1300)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--colors", type=int, default=128, help="palette size (0: keep full colour)")
    args = parser.parse_args()
    out = screenshot(args.page, args.out, args.width, args.height)
    if args.colors:  # a 128-colour palette keeps the committed PNG near 100 KB instead of 250 KB
        from PIL import Image

        image = Image.open(out).convert("P", palette=Image.Palette.ADAPTIVE, colors=args.colors)
        image.save(out, optimize=True)
    print(out)


if __name__ == "__main__":
    main()
