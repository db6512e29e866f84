"""Pretrained MiniLM inside attnlab: parity with the reference libraries, a pronoun probe, word senses.

    python benchmarks/probes.py                          # WSC273 from $ATTNLAB_DATA/wsc273 if set
    python benchmarks/probes.py --data-dir ../shared/data

Writes benchmarks/results/probes.json and the figures under docs/figures/ (docs/pretrained.md
shows them). Every number in that doc comes from the JSON.

1. Parity: attnlab's rebuild of the checkpoint against transformers' BertModel (every hidden state
   and attention map; max abs difference over real tokens of a padded batch) and against
   sentence-transformers' embeddings. Both libraries load from the package folder with
   HF_HUB_OFFLINE=1; without them the parity entry says "skipped".
2. Pronoun probe (attnlab.probes.pronouns; Clark et al. 2019's attention-as-antecedent-picker):
   per (layer, head) accuracy on generated Winograd twins; the head is chosen on the selection
   half of the schemas and scored on the held-out half, then on WSC273 (never used to choose).
   Baselines without attention: first-mentioned / nearest candidate, and candidate substitution
   scored by sentence-embedding similarity (the checkpoint has no masked-LM head, so the usual
   likelihood scoring cannot run; see the "mlm" entry).
3. Word senses (attnlab.probes.senses): 1-NN and 2-means sense accuracy per layer, against the
   input embeddings (layer 0) and a bag of the sentence's input vectors.

Figures are drawn by attnlab.viz.probes. Our own encoder trained on a generated pronoun task is
benchmarks/own_pronouns.py.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

import common
from attnlab.pretrained import load_encoder, sentence_attention
from attnlab.probes import pronouns, senses
from attnlab.tour.pretrained import TWINS, draw_pronoun_rows, pronoun_rows
from attnlab.viz import draw_attention
from attnlab.viz.probes import draw_head_grids, draw_layer_curves


def parity(encoder) -> dict:
    """Max abs differences against transformers' BertModel (per layer) and sentence-transformers."""
    texts = [e.text for e in senses.sense_examples()[::8]] + list(TWINS) + ["Naïve café, 東京 & e-mail: x@y.com!"]
    out: dict = {"sentences": len(texts)}
    try:
        from transformers import BertModel
    except ImportError as err:
        out["transformers"] = f"skipped: {err}"
    else:
        ref = BertModel.from_pretrained(str(encoder.path), attn_implementation="eager").eval()
        states, batch = encoder.hidden_states(texts)  # (L + 1, b, t, d)
        attn, _ = encoder.attentions(batch)  # (L, b, h, t, t)
        with torch.no_grad():
            theirs = ref(
                input_ids=batch.ids,
                attention_mask=batch.mask.long(),
                token_type_ids=batch.token_types,
                output_hidden_states=True,
                output_attentions=True,
            )
        real = batch.mask[..., None]  # (b, t, 1)
        rows = batch.mask[:, None, :, None]  # (b, 1, t, 1)
        out["hidden_state_max_abs_diff"] = [
            float(((a - b) * real).abs().max()) for a, b in zip(states, theirs.hidden_states)
        ]
        out["attention_max_abs_diff"] = [float(((a - b) * rows).abs().max()) for a, b in zip(attn, theirs.attentions)]
        out["padded_batch"] = f"{tuple(batch.ids.shape)}, {int(batch.mask.sum())} real tokens"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        out["sentence_transformers"] = f"skipped: {err}"
    else:
        st = SentenceTransformer(str(encoder.path), device="cpu").encode(texts, convert_to_tensor=True)
        out["sentence_embedding_max_abs_diff"] = float((encoder.encode(texts) - st).abs().max())
    return out


def mlm_head(encoder) -> dict:
    """Whether the checkpoint carries a masked-LM head (needed for likelihood scoring of WSC)."""
    from safetensors import safe_open

    with safe_open(str(encoder.path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    head = [k for k in keys if k.startswith("cls.")]
    return {"has_mlm_head": bool(head), "checkpoint_key_prefixes": sorted({k.split(".")[0] for k in keys})}


def pronoun_probe(encoder, data_dir, schemas: int, seed: int) -> dict:
    examples = pronouns.generate_pairs(schemas_per_template=schemas, seed=seed)
    selection, heldout = pronouns.split_by_group(examples, seed=seed)
    s_sel, s_held = pronouns.score_examples(encoder, selection), pronouns.score_examples(encoder, heldout)
    result = {
        "generated": pronouns.probe(s_sel, pronouns.labels_of(selection), s_held, pronouns.labels_of(heldout)),
        "generated_sizes": {"selection": len(selection), "heldout": len(heldout)},
        "generated_position_baselines": pronouns.position_baselines(heldout),
        "generated_substitution_baseline": pronouns.substitution_accuracy(encoder, heldout),
    }
    wsc = pronouns.load_wsc273(data_dir)
    if wsc is None:
        result["wsc273"] = "skipped: no wsc273/wsc273.jsonl under --data-dir or $ATTNLAB_DATA"
        return result
    s_wsc = pronouns.score_examples(encoder, wsc)
    on_wsc = pronouns.probe(s_sel, pronouns.labels_of(selection), s_wsc, pronouns.labels_of(wsc))
    grid = torch.tensor(on_wsc["eval_grid"])  # (L, h)
    flat = int(grid.flatten().argmax())
    on_wsc["max_over_heads_looking_at_wsc"] = {"head": list(divmod(flat, grid.shape[1])), "accuracy": float(grid.max())}
    on_wsc["position_baselines"] = pronouns.position_baselines(wsc)
    on_wsc["substitution_baseline"] = pronouns.substitution_accuracy(encoder, wsc)
    result["wsc273"] = on_wsc
    return result


def word_senses(encoder) -> tuple[dict, torch.Tensor, list]:
    examples = senses.sense_examples()
    vectors, bags = senses.word_vectors(encoder, examples)  # (L + 1, n, d), (n, d)
    sep = senses.separation(vectors, examples)
    bag = senses.separation(bags, examples)
    counts = {
        w: {s: sum(e.word == w and e.sense == s for e in examples) for s in senses.SENSES[w]} for w in senses.SENSES
    }
    return (
        {
            "sentences": counts,
            "layers": sep,
            "bag_of_input_vectors": {"nn": bag["nn"][0], "two_means": bag["two_means"][0]},
        },
        vectors,
        examples,
    )


def draw_figures(figures: Path, probe: dict, sense: dict, vectors, examples, encoder) -> list[str]:
    gen = probe["generated"]
    names = []
    layer, head = gen["best_head"]
    draw_head_grids(
        {
            "pronoun probe accuracy, selection half": gen["selection_grid"],
            "pronoun probe accuracy, held-out half": gen["eval_grid"],
        },
        mark=(layer, head),
        path=figures / "pronoun_probe_heads.png",
    )
    names.append("pronoun_probe_heads.png")
    series = {
        "best head of the layer (held-out)": gen["per_layer_eval_accuracy"],
        "mean over the layer's heads (held-out)": gen["per_layer_mean_eval_accuracy"],
    }
    if isinstance(probe.get("wsc273"), dict):
        series["same heads on WSC273"] = probe["wsc273"]["per_layer_eval_accuracy"]
    draw_layer_curves(series, ylim=(0.3, 0.8), path=figures / "pronoun_probe_layers.png")
    names.append("pronoun_probe_layers.png")
    # the twins, with the chosen head
    rows = pronoun_rows(encoder, layer, head)
    draw_pronoun_rows(rows, layer, head, figures / "pronoun_twins.png")
    probe["twins"] = {text: weights for text, (_, _, weights) in zip(TWINS, rows, strict=True)}
    names.append("pronoun_twins.png")
    att = sentence_attention(TWINS[0], encoder=encoder)
    draw_attention(
        att.weights[layer, head],
        rows=att.tokens,
        cols=att.tokens,
        title=f"layer {layer} head {head}",
        path=figures / "attend_best_head.png",
    )
    names.append("attend_best_head.png")
    # senses
    last = vectors.shape[0] - 1
    senses.draw_senses(vectors, examples, layers=[0, last // 2, last], path=figures / "senses_pca.png")
    names.append("senses_pca.png")
    draw_layer_curves(
        {
            "1-NN, word vector at layer": sense["layers"]["nn"],
            "2-means, word vector at layer": sense["layers"]["two_means"],
        },
        references={"1-NN, bag of input vectors": sense["bag_of_input_vectors"]["nn"]},
        xlabel="layer (0 = input embeddings)",
        ylabel="sense accuracy",
        path=figures / "senses_layers.png",
    )
    names.append("senses_layers.png")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding wsc273/ (default: $ATTNLAB_DATA)")
    parser.add_argument("--schemas", type=int, default=24, help="generated schemas per template (2 sentences each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/probes.json")
    parser.add_argument("--figures", type=Path, default=common.FIGURES)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: fastest on 2 shared cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    encoder = load_encoder()
    meta = common.machine(argv, load_average=os.getloadavg())
    report = {
        "command": meta["command"],
        "date": meta["date"],
        "machine": meta,
        "model": str(encoder.path),
        "parity": parity(encoder),
        "mlm": mlm_head(encoder),
    }
    print("parity", json.dumps(report["parity"]))
    report["pronouns"] = pronoun_probe(encoder, args.data_dir, args.schemas, args.seed)
    sense, vectors, examples = word_senses(encoder)
    report["senses"] = sense
    args.figures.mkdir(parents=True, exist_ok=True)
    report["figures"] = draw_figures(args.figures, report["pronouns"], sense, vectors, examples, encoder)
    report["seconds"] = round(time.perf_counter() - start, 1)
    out = common.write_result(report, "probes.json", args.out)
    gen = report["pronouns"]["generated"]
    print(
        f"best head {gen['best_head']}: selection {gen['selection_accuracy']:.3f}, held-out {gen['eval_accuracy']:.3f} "
        f"(n={gen['eval_n']}, p={gen['eval_p_value']:.3g})"
    )
    if isinstance(report["pronouns"]["wsc273"], dict):
        w = report["pronouns"]["wsc273"]
        print(f"WSC273 with that head: {w['eval_accuracy']:.3f} (p={w['eval_p_value']:.3g})")
    print("senses 1-NN per layer", [round(x, 3) for x in sense["layers"]["nn"]])
    print(f"wrote {out} and {len(report['figures'])} figures in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
