import pytest
import torch

from attnlab.core import Trace, capture
from attnlab.memory import MemN2N, MemN2NConfig, hop_weights


def test_hop_weights_stack_hops_and_join_calls_along_the_batch():
    torch.manual_seed(0)
    model = MemN2N(MemN2NConfig(embed_dim=8, hops=3, memory_size=5), 12)
    story, question = torch.randint(1, 12, (4, 5, 3)), torch.randint(1, 12, (4, 2))
    with capture(model) as trace:
        model(story[:3], question[:3])
        model(story[3:], question[3:])
    weights = hop_weights(trace)
    assert weights.shape == (4, 3, 5)
    records = trace.select(kind="memory")
    for hop in range(3):
        assert torch.equal(weights[:3, hop], records[hop].weights[:, 0, 0])
        assert torch.equal(weights[3:, hop], records[3 + hop].weights[:, 0, 0])


def test_hop_weights_name_what_the_trace_holds_when_it_has_no_memory_records():
    trace = Trace()
    trace.record("encoder.layers.0", "self", torch.rand(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"no kind 'memory' records; recorded paths: \['encoder.layers.0'\]"):
        hop_weights(trace)
