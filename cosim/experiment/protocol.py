"""A device's round as the steps ns-3 enacts: computations and messages, in order.

Two protocols (``ExperimentConfig.protocol``):

- ``per-step`` (default): split learning as it runs. The global device part comes down; in each of
  the τ local steps the device computes the embeddings and sends its activations, the server runs
  its forward pass and sends the encoder output, the device runs the head (forward and backward)
  and sends the gradient of that output, the server runs its backward pass and, when what the device
  runs before the cut trains (LoRA embeddings, or its own layers: `device_layers`), sends the
  gradient of the activations, through which the device back-propagates;
  last, the device's trainable parameters go up for aggregation. Every message is the learning
  side's (``learning.payload.Message``: the real tensors' bytes in the wire dtype).
- ``lumped``: the paper's model. The device computes its whole round, sends all its uplink bytes,
  the server computes, and all the downlink bytes come back.

Both charge the same computation and carry the same bytes; they differ in what waits for what.
Computation is split over a step by the FLOPs of its parts: the server's forward pass and its
backward pass (counted on the real modules, learning/flops.py), the device's forward before the
cut (embeddings and its layers), its head (forward and backward) and its backward before the cut
(``DeviceFlops``). With frozen
embeddings the device model still charges their backward (cosim/experiment/runloop.py); it is placed with the
head, before the gradient goes up.

ns-3 walks the steps from both ends (ns3_scenarios/cosim-protocol.h): the device and the server
each take their own computations, send their messages without waiting for them to arrive, and wait
for the messages addressed to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cosim.wire.steps import STEP_KINDS, Step, lumped_steps
from learning.flops import StepFlops
from learning.payload import DOWN, UP, Message

__all__ = ["PROTOCOLS", "STEP_KINDS", "DeviceFlops", "Step", "StepTimes", "lumped_steps", "per_step_steps"]

PROTOCOLS = ("per-step", "lumped")


@dataclass(frozen=True)
class DeviceFlops:
    """FLOPs of one sample's local step on the device, by part: the forward pass before the cut (the
    embeddings and the device's layers, before the activations go up), the head's forward and backward
    passes with the pooling (before the gradient goes up) and the backward pass before the cut (after
    the gradient of the activations came down)."""

    embed_forward: float
    head: float
    embed_backward: float

    @classmethod
    def of(cls, seq_len: int, hidden: int, labels: int, layers: StepFlops | None = None,
           lm_vocab: int | None = None) -> DeviceFlops:
        """Embeddings: three lookups summed and a LayerNorm, ~8 ops per element; mean pooling; the
        linear head; a backward pass costs twice its forward. The device's layers (`layers`, counted on
        the real modules by learning/flops.py) add their own forward and backward passes. With
        `lm_vocab` (the causal-LM task) the head is the LM head at every position, 2·L·H·V FLOPs
        forward and as many for the gradient of its input (its weights are frozen)."""
        embed = 8 * seq_len * hidden
        if lm_vocab:
            head = 2 * (2 * seq_len * hidden * lm_vocab)
        else:
            head = 3 * (seq_len * hidden + 2 * hidden * labels)
        layers = layers or StepFlops(0.0, 0.0)
        return cls(float(embed) + layers.forward, float(head), 2.0 * embed + layers.backward)

    @property
    def total(self) -> float:
        return self.embed_forward + self.head + self.embed_backward


@dataclass(frozen=True)
class StepTimes:
    """One device's computation per local step, split as the per-step protocol places it (seconds)."""

    embed_forward_s: float
    head_s: float
    embed_backward_s: float
    server_forward_s: float
    server_backward_s: float

    @classmethod
    def split(cls, device_s: float, server_s: float, flops: DeviceFlops, server_forward_fraction: float
              ) -> StepTimes:
        """`device_s` and `server_s` (one local step's) divided by the FLOPs of their parts."""
        if not 0 <= server_forward_fraction <= 1:
            raise ValueError(f"server_forward_fraction={server_forward_fraction} must be in [0, 1]")
        share = device_s / flops.total if flops.total > 0 else 0.0
        return cls(flops.embed_forward * share, flops.head * share, flops.embed_backward * share,
                   server_s * server_forward_fraction, server_s * (1 - server_forward_fraction))


def per_step_steps(messages: Sequence[Message], times: StepTimes) -> tuple[Step, ...]:
    """The split-learning round of `messages` (``PayloadPredictor.messages``), with its computations.

    Unsplit learning (all parameters down, local training, all up) is the same shape: the device's
    whole computation sits between the two messages."""
    names = [m.name for m in messages]
    if names and set(names) <= {"parameters"}:
        device_s = times.embed_forward_s + times.head_s + times.embed_backward_s
        down, up = messages
        return (Step("downlink", bytes=down.nbytes), Step("device_compute", seconds=device_s),
                Step("uplink", bytes=up.nbytes))
    out: list[Step] = []
    step = 0
    trains_before_cut = "activations_grad" in names
    for m in messages:
        kind = "uplink" if m.direction == UP else "downlink"
        if m.name == "device_params":
            out.append(Step(kind, bytes=m.nbytes))
        elif m.name == "activations" and m.direction == UP:
            step += 1
            out += [Step("device_compute", seconds=times.embed_forward_s, local_step=step),
                    Step(kind, bytes=m.nbytes, local_step=step)]
        elif m.name == "encoder_output" and m.direction == DOWN:
            out += [Step("server_compute", seconds=times.server_forward_s, local_step=step),
                    Step(kind, bytes=m.nbytes, local_step=step)]
        elif m.name == "encoder_output_grad" and m.direction == UP:
            head_s = times.head_s + (0.0 if trains_before_cut else times.embed_backward_s)
            out += [Step("device_compute", seconds=head_s, local_step=step),
                    Step(kind, bytes=m.nbytes, local_step=step),
                    Step("server_compute", seconds=times.server_backward_s, local_step=step)]
        elif m.name == "activations_grad" and m.direction == DOWN:
            out += [Step(kind, bytes=m.nbytes, local_step=step),
                    Step("device_compute", seconds=times.embed_backward_s, local_step=step)]
        else:
            raise ValueError(f"message {m.name!r} ({m.direction}) has no place in the split-learning round")
    return tuple(out)
