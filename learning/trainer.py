"""The federated learning side the round loop drives: local training, payloads, aggregation, evaluation.

One frozen base model lives in memory. Each scheduled device's trainable tensors (the server-side LoRA
and the device-side head, plus embedding LoRA if enabled) are swapped into it for that device's local
steps and kept as a small per-device state until aggregation, so memory grows with the LoRA size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learning.accelerator import resolve_device, to_device
from learning.aggregate import State
from learning.aggregation import aggregator_class
from learning.config import TrainerConfig
from learning.data import IGNORE_INDEX, Encoded, encode, encode_lm, load_dataset, split_dataset, subsample
from learning.encoder import load_encoder
from learning.flops import StepFlops, step_flops_per_sample
from learning.metrics import accuracy, macro_f1
from learning.partition import label_counts, partition
from learning.payload import DOWN, UP, Link, Message, Payload, PayloadPredictor, total
from learning.split import (
    LmHead,
    build_split_model,
    count_trainable,
    load_trainable,
    trainable_parameters,
    trainable_state,
)
from learning.step import predict_logits, split_step, unsplit_step

# Evaluating a language model holds a batch's logits at once: bounded so that a large vocabulary
# (Qwen2's 152k: 64 texts × 64 tokens would take 2.5 GB) does not exhaust memory.
EVAL_LOGITS_BYTES = 256 * 2**20


@dataclass
class Update:
    """One device's result of a round: its new states as the server received them, what crossed the
    link, and its training loss (its compute time is the device and server models', not this host's)."""

    device: int
    num_samples: int
    server_state: State
    device_state: State
    messages: tuple[Message, ...]  # what crossed the link, in order
    loss: float

    @property
    def payload(self) -> Payload:
        return total(self.messages)


class _Experiment:
    """Data, split model and evaluation shared by the federated and the centralised trainers."""

    def __init__(self, config: TrainerConfig) -> None:
        self.config = config
        data = config.data
        self.language_model = config.task == "causal-lm"
        dataset = load_dataset(data.dataset, data.deduplicate, self.language_model)
        if data.max_samples is not None:
            dataset = subsample(dataset, data.max_samples, data.seed)
        train, validation, test = split_dataset(dataset, data.test_fraction, data.validation_fraction,
                                                data.seed)
        self.label_names = dataset.label_names
        self.train_labels = train.labels
        encoder = load_encoder(config.model.path, config.model.sha256, lm_head=self.language_model)
        tokenise = functools.partial(encode_lm if self.language_model else encode,
                                     tokenizer=encoder.tokenizer, max_length=config.model.max_length)
        self.train_data = tokenise(train)
        self.validation_data = tokenise(validation) if len(validation) else None
        self.test_data = tokenise(test)
        vocabulary = encoder.model.get_input_embeddings().num_embeddings
        sets = (self.train_data, self.validation_data, self.test_data)
        largest = max(int(data.input_ids.max()) for data in sets if data is not None)
        if largest >= vocabulary:
            raise ValueError(f"the tokenizer in {encoder.path} gives token id {largest}, but the model has "
                             f"{vocabulary} token embeddings: the folder's tokenizer is not its model's")
        self.where = resolve_device(config.device)
        self.model = build_split_model(encoder, config.model, config.lora, len(self.label_names),
                                       config.seed).to(self.where, config.precision)
        self.hidden_size = encoder.hidden_size
        # the causal-LM task's head: a vocabulary-wide projection at every position, on the device
        self.lm_vocab = int(encoder.lm_head.weight.shape[0]) if encoder.lm_head is not None else None

    def _optimizers(self, *modules: nn.Module) -> list[torch.optim.AdamW]:
        """One AdamW per module that has something to train (a device running only frozen parts has not)."""
        groups = [[p for p in module.parameters() if p.requires_grad] for module in modules]
        return [torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
                for params in groups if params]

    def evaluate(self) -> dict[str, float]:
        """Of the current model on the test set (`accuracy`, ...: what a paper reports) and on the
        validation set (`val_accuracy`, ...: what choices of hyper-parameters look at; absent without a
        validation split): accuracy, macro-F1 and mean cross-entropy (`loss`) for classification;
        mean next-token cross-entropy over the target tokens (`loss`, nats) and `perplexity`, its
        exponential, for the causal-LM task."""
        self.model.train(False)
        metrics = self._metrics(self.test_data)
        if self.validation_data is not None:
            metrics |= {f"val_{name}": value for name, value in self._metrics(self.validation_data).items()}
        return metrics

    def _metrics(self, data: Encoded) -> dict[str, float]:
        if self.language_model:
            return self._lm_metrics(data)
        logits = torch.empty(len(data), len(self.label_names))
        for index, batch in data.by_length(self.config.eval_batch_size):
            logits[index] = predict_logits(self.model, batch.to(self.where)).cpu()
        labels, predictions = data.labels.numpy(), logits.argmax(dim=1).numpy()
        return {"accuracy": accuracy(labels, predictions),
                "macro_f1": macro_f1(labels, predictions, len(self.label_names)),
                "loss": float(F.cross_entropy(logits, data.labels)), "samples": float(len(data))}

    def _lm_metrics(self, data: Encoded) -> dict[str, float]:
        """Summed over every target token of the set, then divided: each token weighs the same whatever
        its text's length (a mean of per-batch means would not). A batch holds its logits, texts ×
        length × vocabulary floats, so it has at most `learning.eval_batch_size` texts and at most
        those that keep its logits within EVAL_LOGITS_BYTES."""
        nll, tokens = 0.0, 0
        per_text = 4 * data.input_ids.shape[1] * self.lm_vocab  # fp32 logits of the longest text
        size = max(1, min(self.config.eval_batch_size, EVAL_LOGITS_BYTES // per_text))
        for _, batch in data.by_length(size):
            batch = batch.to(self.where)
            with torch.inference_mode():
                logits = self.model.logits(batch.input_ids, batch.attention_mask)
                nll += float(LmHead.loss(logits, batch.labels, reduction="sum"))
            tokens += int((LmHead.targets(batch.labels) != IGNORE_INDEX).sum())
        loss = nll / max(tokens, 1)
        return {"loss": loss, "perplexity": float(np.exp(loss)), "tokens": float(tokens),
                "samples": float(len(data))}


class SplitFedTrainer(_Experiment):
    """Split federated LoRA (or, with `mode="unsplit"`, federated LoRA with the whole model on devices)."""

    def __init__(self, config: TrainerConfig) -> None:
        super().__init__(config)
        self.partitions = partition(self.train_labels, config.data)
        empty = [k for k, part in enumerate(self.partitions) if len(part) == 0]
        if empty:
            raise ValueError(f"devices {empty} got no training samples: fewer devices or more data")
        self.sample_counts = np.array([len(part) for part in self.partitions])
        self.label_counts = label_counts(self.train_labels, self.partitions, len(self.label_names))
        self._rngs = [np.random.default_rng([config.seed, k]) for k in range(config.data.devices)]
        self.deliveries = np.zeros(config.data.devices, dtype=np.int64)  # rounds each update arrived in
        self.global_server: State = trainable_state(self.model.server)
        self.global_device: State = trainable_state(self.model.device)
        # The server's rule for the delivered updates, and its term in the local objective (FedProx).
        self.aggregator = aggregator_class(config.aggregator.name)(config.aggregator.knobs, config)
        self.predictor = PayloadPredictor(
            hidden_size=self.hidden_size, wire_dtype=config.model.torch_wire_dtype,
            device_params=count_trainable(self.model.device),
            server_params=count_trainable(self.model.server),
            front_trainable=config.model.device_trains_before_cut, split=config.mode == "split")

    @property
    def devices(self) -> int:
        return len(self.partitions)

    @functools.cached_property
    def server_flops_per_sample(self) -> StepFlops:
        """FLOPs of the server's part of one sample's training step (none unsplit: the device runs it all)."""
        if self.config.mode != "split":
            return StepFlops(0.0, 0.0)
        return step_flops_per_sample(self.model.server, self.hidden_size, self.config.model.max_length,
                                     activations_train=self.config.model.device_trains_before_cut)

    @functools.cached_property
    def device_layer_flops_per_sample(self) -> StepFlops:
        """FLOPs of the device's encoder layers (before the cut) in one sample's training step; none
        when the cut follows the embeddings."""
        blocks = self.model.device.blocks
        if blocks is None:
            return StepFlops(0.0, 0.0)
        return step_flops_per_sample(blocks, self.hidden_size, self.config.model.max_length,
                                     activations_train=self.config.model.embeddings != "frozen")

    def messages(self, device: int) -> tuple[Message, ...]:
        """The messages `local_train` will send for this device, predicted from shapes alone."""
        batch = min(self.config.batch_size, int(self.sample_counts[device]))
        return self.predictor.messages(self.config.local_steps, batch, self.config.model.max_length)

    def payload_bytes(self, device: int) -> Payload:
        """The payload `local_train` will measure for this device, predicted from shapes alone."""
        return total(self.messages(device))

    def local_train(self, devices: Iterable[int]) -> dict[int, Update]:
        """τ local steps for each device, each starting from the current global state."""
        devices = list(devices)
        unknown = [k for k in devices if not 0 <= k < self.devices]
        if unknown:
            raise ValueError(f"unknown devices {unknown}: this run has devices 0..{self.devices - 1}")
        return {k: self._train_device(k) for k in devices}

    def _next_batch(self, device: int) -> np.ndarray:
        part = self.partitions[device]
        return self._rngs[device].choice(part, size=min(self.config.batch_size, len(part)), replace=False)

    def _train_device(self, device: int) -> Update:
        split = self.config.mode == "split"
        link = Link(self.config.model.torch_wire_dtype)
        # The device fetches the global device-side state; unsplit, it fetches the LoRA as well (one
        # message with both, as the upload at the end).
        params = "device_params" if split else "parameters"
        load_trainable(self.model.device, link.send_state("device_params", DOWN, self.global_device, params))
        load_trainable(self.model.server, self.global_server if split
                       else link.send_state("server_params", DOWN, self.global_server, params))
        optimizers = self._optimizers(self.model.device, self.model.server)
        self.model.train(True)
        losses = []
        for _ in range(self.config.local_steps):
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            batch = self.train_data.batch(self._next_batch(device)).to(self.where)
            losses.append(split_step(self.model, batch, link) if split else unsplit_step(self.model, batch))
            self._add_local_terms()
            for optimizer in optimizers:
                optimizer.step()
        server_state = trainable_state(self.model.server)
        if not split:
            server_state = link.send_state("server_params", UP, server_state, params)
        return Update(
            device=device, num_samples=int(self.sample_counts[device]), server_state=server_state,
            device_state=link.send_state("device_params", UP, trainable_state(self.model.device), params),
            messages=link.messages(), loss=float(np.mean(losses)))

    def _add_local_terms(self) -> None:
        """The aggregator's term in the local objective (FedProx's proximal term), each part's on its
        own side, over its trainable parameters and the global state the round started from."""
        for part, module, start in (("device", self.model.device, self.global_device),
                                    ("server", self.model.server, self.global_server)):
            term = self.aggregator.local_term(part, trainable_parameters(module), start)
            if term is not None:
                term.backward()

    def aggregate(self, updates: Mapping[int, Update], delivered: set[int]) -> None:
        """The aggregator's rule over the delivered updates (weights: `aggregation_weights`), per part.

        Only delivered updates count; none delivered changes nothing (not even the server optimiser state).
        """
        unknown = delivered - set(updates)
        if unknown:
            raise ValueError(f"delivered devices {sorted(unknown)} have no update this round")
        arrived = [updates[k] for k in sorted(delivered)]
        if not arrived:
            return
        self.deliveries[sorted(delivered)] += 1
        weights = [u.num_samples for u in arrived]
        if self.config.aggregation_weights == "inverse-participation":
            weights = [w / self.deliveries[u.device] for w, u in zip(weights, arrived, strict=True)]
        self.global_server = self.aggregator.aggregate("server", self.global_server,
                                                       [u.server_state for u in arrived], weights)
        self.global_device = self.aggregator.aggregate("device", self.global_device,
                                                       [u.device_state for u in arrived], weights)

    def state_dict(self) -> dict:
        """Everything later rounds depend on: the global states, the server optimisers' moments, the
        devices' batch samplers, their delivery counts and torch's generator (LoRA dropout). The base
        model is not in it."""
        state = {"global_server": self.global_server, "global_device": self.global_device,
                 "aggregator": self.aggregator.state_dict(),
                 "samplers": [rng.bit_generator.state for rng in self._rngs],
                 "deliveries": self.deliveries.copy(), "torch_rng": torch.get_rng_state()}
        if self.where.type == "cuda":  # LoRA dropout draws there
            state["cuda_rng"] = torch.cuda.get_rng_state(self.where)
        return to_device(state, "cpu")  # a checkpoint reads on any machine

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` of a trainer built from the same config."""
        if len(state["samplers"]) != len(self._rngs):
            raise ValueError(f"the state is of {len(state['samplers'])} devices, this trainer has "
                             f"{len(self._rngs)}")
        state = to_device(state, self.where)
        self.global_server, self.global_device = state["global_server"], state["global_device"]
        # checkpoints from before aggregators by name kept the server optimisers' states as "optimizers"
        self.aggregator.load_state_dict(state["aggregator"] if "aggregator" in state else state["optimizers"])
        for rng, sampler in zip(self._rngs, state["samplers"], strict=True):
            rng.bit_generator.state = sampler
        # Checkpoints from before the delivery counts were kept: counted from here on.
        self.deliveries = np.array(state.get("deliveries", np.zeros(len(self._rngs))), dtype=np.int64)
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and self.where.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.where)

    def evaluate(self) -> dict[str, float]:
        load_trainable(self.model.server, self.global_server)
        load_trainable(self.model.device, self.global_device)
        return super().evaluate()


class CentralisedTrainer(_Experiment):
    """Centralised LoRA on the pooled training data: the upper reference for the federated modes."""

    def __init__(self, config: TrainerConfig) -> None:
        super().__init__(config)
        self._rng = np.random.default_rng(config.seed)
        self.optimizers = self._optimizers(self.model.device, self.model.server)

    def train(self, steps: int) -> float:
        """`steps` steps of batch `config.batch_size` drawn from all training data; mean loss."""
        self.model.train(True)
        losses = []
        for _ in range(steps):
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            size = min(self.config.batch_size, len(self.train_data))
            batch = self.train_data.batch(self._rng.choice(len(self.train_data), size=size,
                                                           replace=False)).to(self.where)
            losses.append(unsplit_step(self.model, batch))
            for optimizer in self.optimizers:
                optimizer.step()
        return float(np.mean(losses))


def run_rounds(trainer: SplitFedTrainer, rounds: int,
               on_round: Callable[[int, dict[int, Update], dict[str, float] | None], None] | None = None
               ) -> list[dict[str, float]]:
    """Every device every round, all updates delivered, evaluation every `eval_every` rounds and at the end.

    The full experiment loop schedules and delivers through ns-3; this is its network-free reference.
    """
    history = []
    for r in range(rounds):
        updates = trainer.local_train(range(trainer.devices))
        trainer.aggregate(updates, set(updates))
        metrics = None
        if (r + 1) % trainer.config.eval_every == 0 or r == rounds - 1:
            metrics = {"round": float(r + 1), **trainer.evaluate()}
            history.append(metrics)
        if on_round is not None:
            on_round(r, updates, metrics)
    return history
