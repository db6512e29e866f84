import pytest
import torch
from torch import nn

from attnlab.core import Trace, Traced, attend, capture


class Toy(Traced, nn.Module):
    """Self-attention without projections: enough to exercise tracing."""

    def forward(self, x):  # x (b, h, t, e)
        need = self.tracing
        out, w = attend(x, x, x, need_weights=need)
        if need:
            self.record("self", w, note="toy")
        return out


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Toy(), Toy()])

    def forward(self, x, steps=1):
        for _ in range(steps):
            for layer in self.layers:
                x = layer(x)
        return x


def test_traced_equals_untraced_and_records_per_head():
    torch.manual_seed(0)
    net, x = Net(), torch.randn(2, 3, 4, 5)
    plain = net(x)
    with capture(net) as trace:
        traced = net(x)
    torch.testing.assert_close(traced, plain)
    assert [r.path for r in trace] == ["layers.0", "layers.1"]
    assert trace[0].weights.shape == (2, 3, 4, 4)
    assert trace[0].kind == "self" and trace[0].extra == {"note": "toy"}
    torch.testing.assert_close(trace[0].weights, attend(x, x, x, need_weights=True).weights)


def test_steps_count_per_path_and_stack():
    net, x = Net(), torch.randn(1, 2, 3, 4)
    with capture(net) as trace:
        net(x, steps=3)
    assert [r.step for r in trace.select(path="layers.1")] == [0, 1, 2]
    assert trace.stack("layers.0").shape == (3, 1, 2, 3, 3)
    assert trace.paths() == ["layers.0", "layers.1"]
    with pytest.raises(KeyError, match="layers.0"):
        trace.stack("nowhere")


def test_nothing_attached_outside_the_block():
    net = Net()
    with capture(net):
        assert all(layer.tracing for layer in net.layers)
    assert not any(layer.tracing for layer in net.layers)
    assert "_attn_tap" not in net.layers[0].__dict__


def test_nested_capture_restores_outer():
    net, x = Net(), torch.randn(1, 1, 2, 3)
    with capture(net) as outer:
        with capture(net.layers[0]) as inner:
            net(x)
        net(x)
    assert len(inner) == 1 and inner[0].path == ""
    assert len(outer) == 3


def test_detach_option():
    net = Net()
    x = torch.randn(1, 1, 2, 3, requires_grad=True)
    with capture(net) as kept:
        net(x)
    assert not kept[0].weights.requires_grad
    with capture(net, detach=False) as live:
        net(x)
    assert live[0].weights.requires_grad


def test_trace_record_directly():
    t = Trace()
    t.record("a", "memory", torch.ones(1, 1, 1, 2))
    assert len(t) == 1 and t.select(kind="memory")[0].path == "a"


def test_kinds_in_first_recorded_order():
    trace = Trace()
    for path, kind in (("a", "cross"), ("b", "self"), ("a", "cross"), ("c", "memory")):
        trace.record(path, kind, torch.zeros(1, 1, 1, 1))
    assert trace.kinds() == ["cross", "self", "memory"]
    assert Trace().kinds() == []
