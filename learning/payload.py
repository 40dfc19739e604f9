"""What crosses the wireless link, in bytes, measured from the real tensors or predicted from shapes.

The scheduler and ns-3 get these numbers, so they are counted in the wire dtype: a tensor is cast
when it is sent and cast back to fp32 on arrival, exactly as a real implementation would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Payload:
    uplink_bytes: int = 0
    downlink_bytes: int = 0

    def __add__(self, other: Payload) -> Payload:
        return Payload(self.uplink_bytes + other.uplink_bytes, self.downlink_bytes + other.downlink_bytes)


@dataclass(frozen=True)
class Transfer:
    """One tensor sent across the link."""

    name: str
    direction: str
    nbytes: int


@dataclass
class Link:
    """The boundary between device and server: every tensor crossing it is cast, recorded and detached."""

    wire_dtype: torch.dtype = torch.float32
    transfers: list[Transfer] = field(default_factory=list)

    def send(self, name: str, direction: str, tensor: torch.Tensor,
             requires_grad: bool = False) -> torch.Tensor:
        """The receiver's copy: a fresh leaf (its own autograd graph), fp32 if the tensor is floating."""
        wire = tensor.detach()
        if wire.is_floating_point():
            wire = wire.to(self.wire_dtype)
        self.transfers.append(Transfer(name, direction, wire.nbytes))
        received = wire.float() if wire.is_floating_point() else wire
        return received.requires_grad_(requires_grad)

    def send_state(self, name: str, direction: str,
                   state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: self.send(f"{name}:{key}", direction, value) for key, value in state.items()}

    def payload(self) -> Payload:
        up = sum(t.nbytes for t in self.transfers if t.direction == UP)
        down = sum(t.nbytes for t in self.transfers if t.direction == DOWN)
        return Payload(up, down)


@dataclass(frozen=True)
class PayloadPredictor:
    """Predicts one device's round payload without running a step (what the scheduler plans with).

    Split mode, per local step: up = activations + attention mask (1 B/token) + gradient of the encoder
    output; down = encoder output (+ gradient of the activations when the embeddings train). Per round
    the device-side trainable parameters go down (global) and up (for aggregation). Unsplit mode sends
    only the trainable parameters, all of them, both ways.
    """

    hidden_size: int
    wire_dtype: torch.dtype
    device_params: int
    server_params: int
    embeddings_trainable: bool
    split: bool = True

    def predict(self, steps: int, batch: int, seq_len: int) -> Payload:
        q = torch.empty((), dtype=self.wire_dtype).element_size()
        if not self.split:
            params = (self.device_params + self.server_params) * q
            return Payload(params, params)
        activations = batch * seq_len * self.hidden_size * q
        mask = batch * seq_len
        params = self.device_params * q
        down_grad = activations if self.embeddings_trainable else 0
        return Payload(steps * (2 * activations + mask) + params, steps * (activations + down_grad) + params)
