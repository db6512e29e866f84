"""Transformer stacks against PyTorch's layers (copied weights), the compiled training forward, capture,
overfitting, config errors; KV-cache decoding is in test_transformer_decoding.py."""

import pytest
import torch
from torch import nn

from attnlab.attention.multihead import MultiHeadAttention
from attnlab.core import capture, causal_mask, from_torch_mask, key_mask
from attnlab.core.fast import set_path
from attnlab.models import DecoderLayer, DecoderLM, EncoderDecoder, EncoderLayer, TransformerConfig, build_model
from attnlab.spec import PAD, TaskSpec


def copy_linear(dst: nn.Linear, src: nn.Linear):
    dst.weight.data.copy_(src.weight.data)
    dst.bias.data.copy_(src.bias.data)


def copy_attention(dst: MultiHeadAttention, src: nn.MultiheadAttention):
    dst.load_state_dict(MultiHeadAttention.from_torch(src).state_dict())


def perturbed(module: nn.Module) -> nn.Module:
    with torch.no_grad():  # LayerNorm starts at (1, 0): perturb so that copying them is tested
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return module.double().eval()


CFG = {"embed_dim": 16, "num_heads": 4, "ff_dim": 24, "dropout": 0.0, "activation": "relu"}


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_equals_torch(norm_first):
    torch.manual_seed(0)
    ref = perturbed(nn.TransformerEncoderLayer(16, 4, 24, dropout=0.0, batch_first=True, norm_first=norm_first))
    ours = EncoderLayer(TransformerConfig(**CFG, norm_first=norm_first)).double().eval()
    copy_attention(ours.attn, ref.self_attn)
    copy_linear(ours.ff.linear1, ref.linear1)
    copy_linear(ours.ff.linear2, ref.linear2)
    for n, norm in enumerate((ref.norm1, ref.norm2)):
        ours.sub.norms[n].load_state_dict(norm.state_dict())
    x = torch.randn(3, 6, 16, dtype=torch.float64)
    pad = torch.tensor([[False] * 6, [False] * 3 + [True] * 3, [False] * 5 + [True]])  # torch: True = pad
    want = ref(x, src_key_padding_mask=pad)
    got = ours(x, mask=key_mask(~pad))
    keep = ~pad  # torch's fast path zeroes padded positions' outputs; compare real tokens only
    torch.testing.assert_close(got[keep], want[keep])
    want_causal = ref(x, src_mask=~causal_mask(6), is_causal=True)
    torch.testing.assert_close(ours(x, causal=True), want_causal)


def test_decoder_layer_equals_torch():
    torch.manual_seed(0)
    ref = perturbed(nn.TransformerDecoderLayer(16, 4, 24, dropout=0.0, batch_first=True))
    ours = DecoderLayer(TransformerConfig(**CFG, norm_first=False)).double().eval()
    copy_attention(ours.self_attn, ref.self_attn)
    copy_attention(ours.cross_attn, ref.multihead_attn)
    copy_linear(ours.ff.linear1, ref.linear1)
    copy_linear(ours.ff.linear2, ref.linear2)
    for n, norm in enumerate((ref.norm1, ref.norm2, ref.norm3)):
        ours.sub.norms[n].load_state_dict(norm.state_dict())
    x, memory = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 7, 16, dtype=torch.float64)
    mem_pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    want = ref(x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=mem_pad)
    got = ours(x, memory, memory_mask=key_mask(from_torch_mask(mem_pad)))
    torch.testing.assert_close(got, want)


def tiny(positions="sinusoidal", **kw):
    # vocabularies of 20, max_len 64
    base = {"embed_dim": 16, "num_heads": 4, "num_layers": 2, "ff_dim": 32, "dropout": 0.0}
    base.update(kw)
    return TransformerConfig(positions=positions, **base)


@pytest.mark.inductor  # the one test that builds inductor's kernels (and its dropout, drawn like eager's)
def test_compiled_training_forward_equals_fast_in_logits_and_gradients():
    spec = TaskSpec(seq_len=6, answer_len=2, vocab_size=11, num_outputs=5)
    inputs = torch.randint(1, 11, (3, 6))
    inputs[0, :2] = PAD
    config = {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "dropout": 0.2}
    grads = {}
    for path in ("fast", "compiled"):
        torch.manual_seed(0)
        model = build_model("transformer", config, spec).train()
        set_path(model, path)
        torch.manual_seed(1)  # the compiled step draws its dropout masks like the eager one
        logits = model(inputs)  # (b, n, o)
        logits.square().sum().backward()
        grads[path] = logits.detach(), {n: p.grad for n, p in model.named_parameters()}
    torch.testing.assert_close(grads["compiled"][0], grads["fast"][0])
    for name, grad in grads["fast"][1].items():
        torch.testing.assert_close(grads["compiled"][1][name], grad, msg=name)


def test_capture_records_every_layer_and_head():
    torch.manual_seed(0)
    model = EncoderDecoder(tiny(num_layers=3), 20, 20, max_len=64)
    src, tgt = torch.randint(3, 20, (2, 6)), torch.randint(3, 20, (2, 4))
    src[0, 5] = 0
    plain, _ = model(src, tgt)
    with capture(model) as trace:
        traced, _ = model(src, tgt)
    torch.testing.assert_close(traced, plain)
    kinds = [(r.path, r.kind) for r in trace]
    assert kinds.count(("encoder.layers.2.attn", "self")) == 1
    assert len(trace.select(kind="self")) == 6 and len(trace.select(kind="cross")) == 3
    cross = trace.select(path="decoder.layers.0.cross_attn")[0].weights
    assert cross.shape == (2, 4, 4, 6)
    assert (cross[0, :, :, 5] == 0).all()  # padding gets no attention
    dec_self = trace.select(path="decoder.layers.1.self_attn")[0].weights
    assert (dec_self.triu(1) == 0).all()  # causal


@pytest.mark.parametrize("model_cls", [DecoderLM, EncoderDecoder])
def test_overfits_one_batch(model_cls):
    torch.manual_seed(0)
    model = (
        DecoderLM(tiny("rope"), 20, max_len=64)
        if model_cls is DecoderLM
        else EncoderDecoder(tiny("rope"), 20, 20, max_len=64)
    )
    src = torch.randint(3, 20, (4, 8))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        if model_cls is DecoderLM:
            _, loss = model(src[:, :-1], src[:, 1:])
        else:  # learn to reverse the source
            tgt = torch.cat([torch.ones(4, 1, dtype=torch.long), src.flip(1)], dim=1)
            _, loss = model(src, tgt[:, :-1], tgt[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_ff_dropout_sets_the_dropout_after_the_activation_alone():
    layer = EncoderLayer(TransformerConfig(**{**CFG, "dropout": 0.1}, ff_dropout=0.0))
    assert layer.ff.dropout.p == 0.0 and layer.sub.drops[0].p == 0.1 and layer.attn.dropout == 0.1
    assert EncoderLayer(TransformerConfig(**{**CFG, "dropout": 0.1})).ff.dropout.p == 0.1  # None: dropout
    with pytest.raises(ValueError, match=r"TransformerConfig.ff_dropout: must be in \[0, 1\); got 1.0"):
        TransformerConfig(ff_dropout=1.0)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"TransformerConfig.positions: 'rotary' is not one of"):
        TransformerConfig(positions="rotary")
    with pytest.raises(ValueError, match=r"TransformerConfig.activation"):
        TransformerConfig(activation="swish")
    with pytest.raises(ValueError, match=r"TransformerConfig.embed_dim: 10 is not divisible by num_heads 4"):
        TransformerConfig(embed_dim=10)
    with pytest.raises(ValueError, match=r"TransformerConfig.num_decoder_layers: must be >= 1; got 0"):
        TransformerConfig(num_decoder_layers=0)


def test_vocabularies_lengths_and_padding_are_the_models_arguments():
    torch.manual_seed(0)
    model = EncoderDecoder(tiny("learned"), 11, 7, max_len=9, pad_id=3)
    assert (model.src_embed.num_embeddings, model.tgt_embed.num_embeddings, model.head.out_features) == (11, 7, 7)
    assert model.src_positions.max_len == model.tgt_positions.max_len == 9
    src = torch.tensor([[4, 5, 3, 3]])
    _, mask = model.encode(src)
    assert mask.flatten().tolist() == [True, True, False, False]  # pad_id 3 is never attended
    lm = DecoderLM(tiny("learned"), 13, max_len=5, pad_id=2)
    assert lm.embed.num_embeddings == lm.head.out_features == 13 and lm.positions.max_len == 5
    logits, loss = lm(torch.tensor([[1, 4, 5]]), torch.tensor([[2, 2, 6]]))  # targets equal to pad_id are skipped
    want = torch.nn.functional.cross_entropy(logits[0, 2:], torch.tensor([6]))
    torch.testing.assert_close(loss, want)


@pytest.mark.parametrize("kernel, causal", [(3, False), (4, False), (3, True), (1, False)])
def test_short_conv_is_a_depthwise_convolution_over_positions(kernel, causal):
    from attnlab.models.transformer import ShortConv

    torch.manual_seed(0)
    conv = ShortConv(5, kernel)
    x, keep = torch.randn(2, 7, 5), torch.ones(2, 7, dtype=torch.bool)
    keep[1, :2] = False  # left padding of the second example
    got = conv(x, keep, causal)
    left = kernel - 1 if causal else (kernel - 1) // 2
    w, b = conv.conv.weight[:, 0], conv.conv.bias  # (d, k), (d,)
    want = torch.zeros_like(x)
    for n in range(2):
        for t in range(7):
            want[n, t] = b
            for j in range(kernel):
                s = t - left + j
                if 0 <= s < 7 and keep[n, s]:
                    want[n, t] += w[:, j] * x[n, s]
    torch.testing.assert_close(got, want)


def test_short_conv_layers_keep_their_causality_and_the_old_weights_names():
    torch.manual_seed(0)
    plain = EncoderLayer(TransformerConfig(embed_dim=8, num_heads=2, ff_dim=16, dropout=0.0))
    assert {k for k in plain.state_dict() if k.startswith("sub.")} == {
        f"sub.norms.{n}.{p}" for n in (0, 1) for p in ("weight", "bias")
    }
    layer = EncoderLayer(TransformerConfig(embed_dim=8, num_heads=2, ff_dim=16, dropout=0.0, short_conv=3))
    x = torch.randn(1, 6, 8, requires_grad=True)
    layer(x, causal=True)[0, 2].sum().backward()
    assert x.grad[0, 3:].abs().sum() == 0 and x.grad[0, :3].abs().sum() > 0  # nothing from later positions
    with pytest.raises(ValueError, match="short_conv: must be >= 0"):
        TransformerConfig(short_conv=-1)
    spec = TaskSpec(seq_len=6, answer_len=1, vocab_size=10, num_outputs=10)
    tagger = build_model("transformer", {"short_conv": 3, "embed_dim": 8, "num_heads": 2}, spec)
    assert tagger(torch.randint(1, 10, (2, 6))).shape == (2, 1, 10)
    with pytest.raises(ValueError, match="short_conv: decoding with a KV cache is not supported"):
        layer(x, causal=True, cache=object())


def test_lm_with_a_short_conv_decodes_greedily_what_teacher_forcing_scores():
    torch.manual_seed(0)
    spec = TaskSpec(seq_len=5, answer_len=3, vocab_size=9, num_outputs=9)
    lm = build_model("lm", {"short_conv": 3, "embed_dim": 8, "num_heads": 2, "ff_dim": 16}, spec)
    inputs = torch.randint(1, 9, (4, 5))
    inputs[0, :2] = PAD  # left padding is never read
    lm.eval()
    greedy = lm(inputs)  # (b, n, V)
    lm.train()
    lm.net.drop.p = 0.0
    with torch.no_grad():
        forced = lm(inputs, greedy.argmax(-1))  # fed its own choices: the same logits
    torch.testing.assert_close(forced, greedy, atol=1e-5, rtol=1e-5)
