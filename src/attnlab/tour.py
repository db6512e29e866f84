"""The tour: a few minutes on generated data that show the attention core and a transformer at work.

Writes into one folder: report.html, metrics.json and the figures it shows.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from attnlab.core import attend, capture, causal_mask, why_not_fast_path
from attnlab.models import DecoderLM, TransformerConfig
from attnlab.viz import draw_attention, draw_heads, layers_from_trace

SEP = 1  # separator token of the copy task; 0 is padding, symbols start at 2


def copy_batch(batch: int, length: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    """Sequences `x SEP x` with x random symbols: (batch, 2 * length + 1)."""
    x = torch.randint(2, vocab, (batch, length), generator=generator)  # (b, n)
    sep = torch.full((batch, 1), SEP)
    return torch.cat([x, sep, x], dim=1)  # (b, 2n + 1)


def core_section() -> dict:
    """The fast path (fused SDPA) and the eager path agree, and say why a call is eager."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 32, generator=g) for _ in range(3))
    fast = attend(q, k, v, causal=True).out
    eager, weights = attend(q, k, v, causal=True, need_weights=True)
    return {
        "fast_vs_eager_max_abs_diff": float((fast - eager).abs().max()),
        "weights_rows_sum_to_one": bool(torch.allclose(weights.sum(-1), torch.ones(2, 4, 16))),
        "future_weight": float(weights.masked_select(~causal_mask(16)).abs().max()),
        "why_not_fast_path": {
            "scaled_dot": why_not_fast_path() or "on the fast path",
            "need_weights": why_not_fast_path(need_weights=True),
            "additive": why_not_fast_path(score="additive"),
        },
    }


def train_copy(out: Path, *, steps: int, length: int, seed: int) -> dict:
    """Train a small decoder-only transformer to copy, then look at its attention."""
    torch.manual_seed(seed)
    vocab = 16
    cfg = TransformerConfig(
        vocab_size=vocab, embed_dim=64, num_heads=4, num_layers=2, ff_dim=128, dropout=0.0, positions="rope"
    )
    model = DecoderLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    losses = []
    for _ in tqdm(range(steps), desc="copy task", unit="step"):
        seq = copy_batch(32, length, vocab, g)
        targets = seq[:, 1:].clone()
        targets[:, :length] = cfg.pad_id  # only the copy is predictable, so only it is scored
        _, loss = model(seq[:, :-1], targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start

    model.eval()
    test = copy_batch(256, length, vocab, torch.Generator().manual_seed(seed + 1))
    prompt = test[:, : length + 1]
    generated = model.generate(prompt, length, temperature=0)
    accuracy = float((generated[:, length + 1 :] == test[:, length + 1 :]).float().mean())

    example = test[:1, :-1]
    with capture(model) as trace:
        model(example)
    layers = layers_from_trace(trace, kind="self")  # per layer (h, t, t)
    tokens = [("|" if t == SEP else str(t)) for t in example[0].tolist()]
    draw_heads(layers, tokens=tokens, path=out / "copy_heads.png", title="copy task: every layer and head")
    # The copying head: the one whose queries in the copy send the most weight back to the source.
    copy_rows = slice(length + 1, 2 * length)
    back = torch.stack([w[:, copy_rows, :length].sum(-1).mean(-1) for w in layers])  # (layers, h)
    layer, head = divmod(int(back.argmax()), back.shape[1])
    picked = layers[layer][head][copy_rows]  # (n - 1, t)
    distance = (torch.arange(length + 1, 2 * length) - picked.argmax(-1)).mode().values  # most common look-back
    draw_attention(
        layers[layer][head],
        rows=tokens,
        cols=tokens,
        title=f"layer {layer} head {head}: the copy looks back into the source",
        path=out / "copy_head.png",
    )
    return {
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "copy_accuracy": round(accuracy, 4),
        "copy_head": {
            "layer": layer,
            "head": head,
            "weight_on_source": round(float(back.max()), 3),
            "look_back": int(distance),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def write_report(out: Path, metrics: dict) -> Path:
    core, copy = metrics["core"], metrics["copy"]
    reasons = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in core["why_not_fast_path"].items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>attnlab tour</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td{{padding:2px 8px}}img{{max-width:100%}}</style>
</head><body><h1>attnlab tour</h1>
<h2>One attention core</h2>
<p>Fused kernel and eager path agree to {core['fast_vs_eager_max_abs_diff']:.2e} (max abs difference);
weights sum to one: {core['weights_rows_sum_to_one']}; largest weight on a future key under the causal mask:
{core['future_weight']}.</p>
<table><tr><th>call</th><th>path</th></tr>{reasons}</table>
<h2>A transformer learns to copy</h2>
<p>A {copy['parameters']:,}-parameter decoder-only transformer (2 layers, 4 heads, rotary positions) trained
{copy['steps']} steps in {copy['train_seconds']} s: loss {copy['final_loss']}, greedy copy accuracy
{copy['copy_accuracy']:.1%} on 256 new sequences (KV-cache decoding).</p>
<p>Layer {copy['copy_head']['layer']}, head {copy['copy_head']['head']} sends on average
{copy['copy_head']['weight_on_source']:.0%} of the attention of the copy's positions back to the source sequence,
most often {copy['copy_head']['look_back']} positions back: the head that does the copying.</p>
<img src="copy_head.png" alt="the copying head"><img src="copy_heads.png" alt="all heads">
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path


def run_tour(out: Path, *, steps: int = 400, seed: int = 0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"core": core_section(), "copy": train_copy(out, steps=steps, length=10, seed=seed)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(out, metrics)
    return metrics
