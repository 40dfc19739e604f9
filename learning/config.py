"""Typed settings of the learning side, validated when made so a bad value fails before any training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from learning.accelerator import DEVICES, PRECISIONS
from learning.aggregation import NoKnobs, aggregator_class

WIRE_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
EMBEDDING_MODES = ("frozen", "lora")
MODES = ("split", "unsplit")
PARTITIONS = ("iid", "dirichlet", "shards")
SERVER_LR_DECAYS = ("constant", "cosine", "linear")
AGGREGATION_WEIGHTS = ("samples", "inverse-participation")
TASKS = ("classification", "causal-lm")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class LoraSettings:
    """The peft `LoraConfig` knobs; `target_modules=None` means the family's query/value projections."""

    r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check(self.r >= 1, f"LoRA rank r must be >= 1, got {self.r}")
        _check(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        _check(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        _check(self.target_modules is None or len(self.target_modules) > 0,
               "target_modules must name at least one module (or be None for query/value)")


@dataclass(frozen=True)
class ModelSettings:
    """Which encoder, where it is cut, how the device part trains, what crosses the link.

    `device_layers`: the encoder layers the device runs after its embeddings, with LoRA on their
    query/value projections (trained, so the server sends the gradient of the activations back);
    0 keeps every layer on the server. It must leave at least one layer on the server.

    `path=None` is the packaged all-MiniLM-L6-v2, verified by its pinned checksum; a local folder is
    verified only when `sha256` is given.
    """

    path: Path | None = None
    sha256: str | None = None
    embeddings: str = "frozen"
    wire_dtype: str = "fp32"
    max_length: int = 64
    head_dropout: float = 0.0
    device_layers: int = 0

    def __post_init__(self) -> None:
        _check(self.embeddings in EMBEDDING_MODES,
               f"embeddings must be one of {EMBEDDING_MODES}, got {self.embeddings!r}")
        _check(self.wire_dtype in WIRE_DTYPES, f"wire_dtype must be one of {tuple(WIRE_DTYPES)}, "
               f"got {self.wire_dtype!r}")
        _check(self.max_length >= 2, f"max_length must be >= 2 tokens, got {self.max_length}")
        _check(0.0 <= self.head_dropout < 1.0, f"head_dropout must be in [0, 1), got {self.head_dropout}")
        _check(self.device_layers >= 0, f"device_layers must be >= 0, got {self.device_layers}")
        _check(self.sha256 is None or (len(self.sha256) == 64 and all(c in "0123456789abcdef"
                                                                       for c in self.sha256)),
               f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")

    @property
    def torch_wire_dtype(self) -> torch.dtype:
        return WIRE_DTYPES[self.wire_dtype]

    @property
    def device_trains_before_cut(self) -> bool:
        """Whether anything the device runs before the link trains, so the activations' gradient
        must come back down."""
        return self.embeddings != "frozen" or self.device_layers > 0


@dataclass(frozen=True)
class DataSettings:
    """Dataset (`bbc`, `tweets` or a CSV/JSONL path), held-out splits and how it is spread over devices.

    `test_fraction` of every class is the test set, which only reports; `validation_fraction` more is
    the validation set, on which hyper-parameters are chosen; the rest is spread over the devices.
    `seed` draws the splits, the partition and the subsample (`cosim run` sets it from `data_seed`,
    which defaults to the run's `seed`)."""

    dataset: str | Path = "bbc"
    devices: int = 10
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    deduplicate: bool = True  # keep each text once, so that no test text is also a training one
    partition: str = "dirichlet"
    dirichlet_alpha: float = 0.5
    shards_per_device: int = 2
    max_samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.devices >= 1, f"devices must be >= 1, got {self.devices}")
        _check(0.0 < self.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        _check(self.validation_fraction >= 0.0 and self.test_fraction + self.validation_fraction < 1.0,
               f"validation_fraction must be >= 0 and leave training data beside test_fraction "
               f"{self.test_fraction}, got {self.validation_fraction}")
        _check(self.partition in PARTITIONS, f"partition must be one of {PARTITIONS}, got {self.partition!r}")
        _check(self.dirichlet_alpha > 0, f"dirichlet_alpha must be > 0, got {self.dirichlet_alpha}")
        _check(self.shards_per_device >= 1, f"shards_per_device must be >= 1, got {self.shards_per_device}")
        _check(self.max_samples is None or self.max_samples >= 2,
               f"max_samples must be >= 2 or None, got {self.max_samples}")


@dataclass(frozen=True)
class AggregatorSettings:
    """The server's aggregation rule (learning/aggregation.py): a built-in's name (`fedavg`, `fedavgm`,
    `fedadam`, `fedprox`) or a class's import path (`module:Class`), and its knobs (an instance of the
    class's `Config`; None: its defaults)."""

    name: str = "fedadam"
    knobs: Any = None

    def __post_init__(self) -> None:
        config = getattr(aggregator_class(self.name), "Config", NoKnobs)
        if self.knobs is None:
            object.__setattr__(self, "knobs", config())
        _check(isinstance(self.knobs, config), f"the knobs of {self.name} must be a {config.__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.knobs)}


@dataclass(frozen=True)
class TrainerConfig:
    """One experiment; `mode="unsplit"` is the comparison where each device holds the whole model.

    `task`: `"classification"` (default: a pooled linear head on the device, accuracy, macro-F1) or
    `"causal-lm"` (a decoder only: the model's pre-trained LM head on the device, frozen, next-token
    loss on the data's texts or responses, perplexity; learning/data.py says what the files hold).

    Each device runs `local_steps` AdamW steps (`lr`, `weight_decay`) from the global state with a fresh
    optimiser. The server then averages the delivered states by sample count (FedAvg) and hands the
    average to a server optimiser (`aggregate.ServerOptimizer`) that treats Δ = average − global as a
    pseudo-gradient:

    - `aggregator`: `"fedavg"` (global ← average), `"fedavgm"` (server momentum), `"fedadam"`
      (default), `"fedprox"` (FedAvg with a proximal term in the local objective, knob `mu`) or a
      class of your own by import path (`AggregatorSettings`, learning/aggregation.py). Two fresh-AdamW
      steps move each weight by about 2·`lr` per round and label-skewed devices partly cancel, so
      plain FedAvg covers in 30 rounds far less ground than centralised AdamW does in the same
      number of samples; `fedadam` moves each weight by about `server_lr` per round along the
      consistent part of Δ (BBC quality bench, 30 rounds, constant η 5e-3: 0.951 test accuracy vs 0.908
      with `fedavg`, 0.941 with `fedavgm`; centralised 0.971).
    - `server_lr`: η of the server step (its peak when it decays), > 0. `fedadam` with cosine decay
      wants about 20·`lr` (default 1e-2; same bench with `rounds_hint=30`: 0.960, linear decay 0.957,
      cosine from 5e-3 0.941). The constant 5e-3 run peaked near 0.96 at round 25 and then overshot
      (test loss rising from round 15); a constant 1e-2 is unmeasured. `fedavgm` wants about 1.0.
    - `server_momentum`: in [0, 1); β of `fedavgm`, β1 of `fedadam` (default 0.9). `fedavgm` with
      momentum 0 and server lr 1 is FedAvg.
    - `server_beta2`: in (0, 1); β2 of `fedadam` (default 0.99).
    - `server_lr_decay`: `"constant"`, `"cosine"` (default) or `"linear"`; decays η from `server_lr` at
      the first server step towards 0 at step `rounds_hint` (`aggregate.server_lr_at`), so the early
      rounds take large steps and the late ones settle instead of overshooting. Only server steps taken
      count: a round with nothing delivered does not advance it (it does not change the optimiser's
      state either). No effect on `fedavg`.
    - `rounds_hint`: the horizon of that decay, normally the number of rounds the run will take (>= 1);
      None (default) keeps η constant at `server_lr` whatever `server_lr_decay` says, since the horizon
      is unknown: pass it, or set `server_lr` for a constant η (5e-3 for `fedadam`).
    - `device`: `"auto"` (default: the GPU when torch sees one, else the CPU), `"cpu"` or `"cuda"`;
      `precision`: `"fp32"` (default) or `"bf16"` (autocast forward passes). Neither changes a
      simulated time, energy or payload (learning/accelerator.py).
    - `aggregation_weights`: `"samples"` (default, FedAvg: n_k) or `"inverse-participation"`
      (n_k / c_k, c_k = the rounds device k's update has been delivered in, this one included). A
      scheduler that picks devices by cost delivers some devices far more often than others, and
      FedAvg over what arrives then leans towards their data; dividing by the participation rate
      c_k / t makes each device count in the long run by its data alone (as in analyses of
      federated learning with arbitrary participation, e.g. Wang & Ji 2022). Under uniform or
      round-robin choice all c_k are about equal and the two weightings nearly agree.
    """

    task: str = "classification"
    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataSettings = field(default_factory=DataSettings)
    mode: str = "split"
    local_steps: int = 2
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 0.01
    eval_every: int = 1
    eval_batch_size: int = 64
    seed: int = 0
    aggregator: AggregatorSettings = field(default_factory=AggregatorSettings)
    server_lr: float = 1e-2
    server_momentum: float = 0.9
    server_beta2: float = 0.99
    server_lr_decay: str = "cosine"
    rounds_hint: int | None = None
    aggregation_weights: str = "samples"
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _check(self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}")
        _check(self.task in TASKS, f"task must be one of {TASKS}, got {self.task!r}")
        _check(self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        _check(self.local_steps >= 1, f"local_steps must be >= 1, got {self.local_steps}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        _check(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        _check(self.server_lr > 0, f"server_lr must be > 0, got {self.server_lr}")
        _check(0.0 <= self.server_momentum < 1.0,
               f"server_momentum must be in [0, 1), got {self.server_momentum}")
        _check(0.0 < self.server_beta2 < 1.0, f"server_beta2 must be in (0, 1), got {self.server_beta2}")
        _check(self.server_lr_decay in SERVER_LR_DECAYS,
               f"server_lr_decay must be one of {SERVER_LR_DECAYS}, got {self.server_lr_decay!r}")
        _check(self.rounds_hint is None or self.rounds_hint >= 1,
               f"rounds_hint must be >= 1 or None, got {self.rounds_hint}")
        _check(self.aggregation_weights in AGGREGATION_WEIGHTS,
               f"aggregation_weights must be one of {AGGREGATION_WEIGHTS}, got {self.aggregation_weights!r}")
