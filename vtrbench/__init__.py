"""vtrbench: video-text retrieval benchmarks on cached frozen-CLIP features.

Importing this package is cheap on purpose: torch, open_clip and PyAV are imported
inside the commands that need them, so ``vtrbench --help`` answers at once.
"""

__version__ = "0.1.0"
