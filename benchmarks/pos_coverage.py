"""How often CAMoE's verb / noun streams find a word, on real captions (issue 8, item 4).

    python benchmarks/pos_coverage.py [CSV] [--column sentence]

CSV defaults to the MSR-VTT 1k-A test file in shared/data. Prints, for TextBlob's
PatternTagger alone (the masks before the caption rules) and for vtrbench's ``pattern``
tagger, the share of captions with no verb and with no noun, and how the verbs were found.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

from vtrbench.extract.tagging import AUXILIARIES, make_tagger

DEFAULT = "annotations/msrvtt/MSRVTT_JSFUSION_test.csv"


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    candidates = [here.parent / "shared" / "data" / DEFAULT, Path("/work/shared/data") / DEFAULT]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", type=Path, default=next((p for p in candidates if p.is_file()), None))
    ap.add_argument("--column", default="sentence")
    args = ap.parse_args()
    if args.csv is None or not args.csv.is_file():
        raise SystemExit("error: no caption CSV given and the MSR-VTT 1k-A test CSV is not in shared/data")
    with open(args.csv, newline="") as fh:
        captions = [row[args.column] for row in csv.DictReader(fh)]
    from textblob.en.taggers import PatternTagger

    raw = PatternTagger()
    n = len(captions)
    raw_no_verb = sum(
        not any(t.startswith("VB") and w.lower() not in AUXILIARIES for w, t in raw.tag(c)) for c in captions
    )
    raw_no_noun = sum(not any(t.startswith("NN") for _, t in raw.tag(c)) for c in captions)
    tagger = make_tagger("pattern")
    tagged = [tagger(c) for c in captions]
    verb_src = Counter(t.verb_source for t in tagged)
    noun_src = Counter(t.noun_source for t in tagged)
    print(f"{args.csv.name}: {n} captions")
    print(
        f"PatternTagger alone : no verb {raw_no_verb} ({100 * raw_no_verb / n:.1f} %), "
        f"no noun {raw_no_noun} ({100 * raw_no_noun / n:.1f} %)"
    )
    print(
        f"vtrbench 'pattern'  : no verb {verb_src['sentence']} ({100 * verb_src['sentence'] / n:.1f} %), "
        f"no noun {noun_src['sentence']} ({100 * noun_src['sentence'] / n:.1f} %); "
        f"verbs tagged {verb_src['tagged']}, by caption rule {verb_src['rule']}"
    )


if __name__ == "__main__":
    main()
