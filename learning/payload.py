"""What crosses the wireless link, in bytes, measured from the real tensors or predicted from shapes.

The scheduler and ns-3 get these numbers, so they are counted in the wire dtype: a tensor is cast
when it is sent and cast back to fp32 on arrival, exactly as a real implementation would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Payload:
    uplink_bytes: int = 0
    downlink_bytes: int = 0


@dataclass(frozen=True)
class Message:
    """One message of a round's protocol: the tensors that leave together in one direction, before
    the receiver acts on them (the unit the network carries and the other side waits for)."""

    name: str
    direction: str
    nbytes: int


def total(messages: Iterable[Message]) -> Payload:
    messages = list(messages)
    return Payload(sum(m.nbytes for m in messages if m.direction == UP),
                   sum(m.nbytes for m in messages if m.direction == DOWN))


@dataclass(frozen=True)
class Transfer:
    """One tensor sent across the link, in the message it travels with."""

    name: str
    direction: str
    nbytes: int
    message: str


@dataclass
class Link:
    """The boundary between device and server: every tensor crossing it is cast, recorded and detached."""

    wire_dtype: torch.dtype = torch.float32
    transfers: list[Transfer] = field(default_factory=list)

    def send(self, name: str, direction: str, tensor: torch.Tensor, requires_grad: bool = False,
             message: str | None = None) -> torch.Tensor:
        """The receiver's copy: a fresh leaf (its own autograd graph), fp32 if the tensor is floating.
        Consecutive tensors of the same `message` (default: their own name) travel as one message."""
        wire = tensor.detach()
        if wire.is_floating_point():
            wire = wire.to(self.wire_dtype)
        self.transfers.append(Transfer(name, direction, wire.nbytes, message or name))
        received = wire.float() if wire.is_floating_point() else wire
        return received.requires_grad_(requires_grad)

    def send_state(self, name: str, direction: str, state: dict[str, torch.Tensor],
                   message: str | None = None) -> dict[str, torch.Tensor]:
        return {key: self.send(f"{name}:{key}", direction, value, message=message or name)
                for key, value in state.items()}

    def messages(self) -> tuple[Message, ...]:
        """The transfers so far as the protocol's messages, in the order they were sent."""
        out: list[Message] = []
        for t in self.transfers:
            if out and (out[-1].name, out[-1].direction) == (t.message, t.direction):
                out[-1] = Message(t.message, t.direction, out[-1].nbytes + t.nbytes)
            else:
                out.append(Message(t.message, t.direction, t.nbytes))
        return tuple(out)

    def payload(self) -> Payload:
        return total(self.messages())


@dataclass(frozen=True)
class PayloadPredictor:
    """Predicts one device's round, message by message, without running a step (what the scheduler
    plans with).

    Split mode: the global device-side trainable parameters come down; per local step the device
    sends its activations with the attention mask (1 B/token), the server answers with its encoder
    output, the device sends the gradient of that output, and (when what the device runs before the
    cut trains: LoRA embeddings, or layers on the device) the server answers with the gradient of the
    activations; last, the device's trainable parameters go up for
    aggregation (a device that trains nothing, as in the causal-LM task with its frozen LM head and no
    layers before the cut, neither fetches nor sends parameters). Unsplit mode sends all trainable
    parameters down and up, nothing per step.
    """

    hidden_size: int
    wire_dtype: torch.dtype
    device_params: int
    server_params: int
    front_trainable: bool
    split: bool = True

    def messages(self, steps: int, batch: int, seq_len: int) -> tuple[Message, ...]:
        q = torch.empty((), dtype=self.wire_dtype).element_size()
        if not self.split:
            params = (self.device_params + self.server_params) * q
            return Message("parameters", DOWN, params), Message("parameters", UP, params)
        activations = batch * seq_len * self.hidden_size * q
        mask = batch * seq_len
        step = [Message("activations", UP, activations + mask), Message("encoder_output", DOWN, activations),
                Message("encoder_output_grad", UP, activations)]
        if self.front_trainable:
            step.append(Message("activations_grad", DOWN, activations))
        if not self.device_params:
            return tuple(step * steps)
        params = self.device_params * q
        return (Message("device_params", DOWN, params), *(step * steps), Message("device_params", UP, params))
