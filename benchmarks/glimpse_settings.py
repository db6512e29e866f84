"""The glimpse benchmark's settings (benchmarks/glimpse.py): the canvases of Mnih et al. 2014 and Ba et al.
2015, each with its models' configs and the papers' figures, and the run config a command's flags make."""

from __future__ import annotations

SETTINGS = {
    "centered28": {
        "task": {"setting": "centered"},
        "ram": {"glimpse_size": 8, "num_scales": 1, "num_glimpses": 6},
        "paper": {"ram": 0.0129, "cnn": 0.0121, "fc": 0.0169},
    },
    "translated60": {
        "task": {"setting": "translated", "size": 60},
        "ram": {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8},
        "paper": {"ram": 0.0184, "cnn": 0.0162},
    },
    "cluttered60": {
        "task": {"setting": "cluttered", "size": 60, "distractors": 4},
        "ram": {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8},
        "paper": {"ram": 0.0523, "cnn": 0.0783},
    },
    "cluttered100": {
        "task": {"setting": "cluttered", "size": 100, "distractors": 8},
        "ram": {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8},
        "paper": {"ram": 0.1083, "cnn": 0.1651},
    },
}
# The CNN keeps its feature map (flatten) for the fully connected layers, as the paper's baseline
# did (global average pooling lost about 10 points on centred MNIST in a short run), with 16 and
# 32 channels so that 100x100 canvases train in minutes on a CPU.
# The soft-attention baseline reads the same trunk (the learned queries attend over its feature map's cells).
BASELINES = {"image_cnn": {"pooling": "flatten", "channels": [16, 32]}, "soft_attention": {"channels": [16, 32]}}
DEFAULT_LR = 1e-3  # --lr's default; a seeds-table row names any other
TRAIN_IMAGES = 55000  # MNIST's training digits less the 5,000 held out for validation: one epoch
# Two digits apart on a 100x100 canvas with 8 pieces of clutter (Ba et al. 2015, sec. 4.1). RAM and the
# CNN name the pair as one of 55 classes; DRAM names its two digits one after the other (sorted, so the
# pair is unordered), 3 glimpses each, as the paper's model names objects in sequence. The sum is one
# answer of 19 classes for all three; DRAM then takes 6 glimpses before it answers.
PAIRS = {
    "pair100": {
        "task": {"target": "pair"},
        "dram_answer": "digits",
        "ram": {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8},
        "dram": {"glimpse_size": 12, "num_scales": 4, "glimpses_per_label": 3},
        "paper": {"ram": 0.09, "dram": 0.05},
    },
    "sum100": {
        "task": {"target": "sum"},
        "ram": {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8},
        "dram": {"glimpse_size": 12, "num_scales": 4, "glimpses_per_label": 6},
        "paper": {"cnn": 0.032, "dram": 0.025},
    },
}
PAPER_SOURCE = "Mnih et al. 2014, arXiv v1; Ba et al. 2015 (../shared/REFERENCES.md)"
BASELINE_KEY = {"ram": "ram", "dram": "dram", "image_cnn": "cnn", "image_mlp": "fc"}
GLIMPSE_MODELS = ("ram", "dram")
COST_SIZES = (28, 60, 100, 200)
COST_RAM = {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8}
# DRAM with its defaults (3 scales of 12x12, 3 glimpses per label) naming two digits: 6 glimpses,
# and the context network's look at the whole image averaged down to 12x12.
COST_DRAM = {"labels": 2}
# The one that names the pairs at the paper's error: 4 scales, the convolutional G_image (PAIRS' pair100).
COST_DRAM_CONV = {"labels": 2, "glimpse_size": 12, "num_scales": 4, "what_net": "conv"}
# The one that reads the sum: one answer after 6 glimpses, 4 scales of 16x16, the convolutional G_image
# with twice the channels (the sum's seeds' --model-set glimpse_size=16 --model-set glimpse_hidden=256).
COST_DRAM_SUM = {"labels": 1, "glimpse_size": 16, "num_scales": 4, "glimpses_per_label": 6, "what_net": "conv",
                 "glimpse_hidden": 256}  # fmt: skip


def run_config(args, setting: str, model: str, seed: int) -> dict:
    entry = SETTINGS.get(setting) or PAIRS[setting]
    task = dict(entry["task"])
    values = dict(entry.get(model, BASELINES.get(model, {})))
    if model in GLIMPSE_MODELS and args.location_std:
        values["location_std"] = args.location_std
    if model == "ram" and args.policy_trains_core:
        values["policy_trains_core"] = True
    if model in GLIMPSE_MODELS and args.what_net != "mlp":
        values["what_net"] = args.what_net
    for item in args.model_set:  # "key=value", read by the model's config like a CLI override
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"glimpse.py: --model-set wants key=value, got {item!r}")
        values[key] = value
    if model == "dram" and "dram_answer" in entry:
        task["answer"] = entry["dram_answer"]
        if args.unordered:
            values["unordered"] = True
    return {
        "task": {"name": "digits" if setting in SETTINGS else "digit_pairs", "source": args.source, **task},
        "model": {"name": model, **values},
        "train": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "warmup_steps": args.warmup,
            "weight_decay": args.weight_decay,
            "min_lr_ratio": args.min_lr_ratio,
            "eval_every": args.eval_every,
            "eval_size": 10000,
            "seed": seed,
            "clip_norm": 5.0,
            "keep_checkpoints": 0,
            **({"precision": precision(args)} if args.bf16 else {}),  # recorded when set
            **({"guide_every": args.guide_every} if args.guide_every else {}),  # recorded when set
        },
    }


def precision(args) -> str:
    """--bf16: the training steps' train.precision."""
    return "bfloat16" if args.bf16 else "float32"
