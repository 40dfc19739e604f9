"""One experiment as a typed, frozen config: a YAML file (or a shipped preset) plus `key=value` overrides.

    cfg = load_config("smoke", ["scenario.devices=4", "policy.name=random-k", "rounds=5"])

Every key is checked against the dataclasses below (an unknown key names the closest valid ones),
every value is parsed by its field's type and every section validates itself when it is made, so
a bad setting fails before any process starts or any model loads.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from cosim.experiment.protocol import PROTOCOLS
from cosim.simulator.scenario import ConfigError, ScenarioConfig
from learning.aggregation import AGGREGATORS, aggregator_class
from learning.config import AggregatorSettings, TrainerConfig
from optimizer import POLICIES, NoKnobs, PolicyContext, knobs_of, policy_class

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
BUILTIN_DATASETS = ("bbc", "tweets")
TRANSPORTS = ("shm", "zmq")


@dataclass(frozen=True)
class PolicyConfig:
    """The scheduler: a built-in policy's name or a class's import path (`module:Class`), and its
    knobs. In YAML and overrides the knobs are the other `policy.*` keys; each policy declares its
    own (its `Config` dataclass, optimizer/policy.py), so a key it does not take is an error naming
    those it does, and each value is parsed to the knob's type."""

    name: str = "lyapunov"
    knobs: Any = None  # the policy's Config, built from the other keys (None: its defaults)

    def __post_init__(self) -> None:
        cls = policy_class_or_error(self.name)
        config_cls = getattr(cls, "Config", NoKnobs)
        if self.knobs is None:
            object.__setattr__(self, "knobs", _knobs("policy", self.name, config_cls, {}))
        elif not isinstance(self.knobs, config_cls):
            raise ConfigError(f"policy.knobs must be a {config_cls.__name__} for {self.name}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.knobs)}

    def context(self, rounds: int, seed: int, devices: int) -> PolicyContext:
        return PolicyContext(rounds=rounds, seed=seed, devices=devices, threads=1)


def policy_class_or_error(name: str) -> type:
    try:
        return policy_class(name)
    except ValueError as err:
        raise ConfigError(f"policy.name={name!r} is invalid: {err}") from None


def _knobs(key: str, name: str, config_cls: type, values: dict) -> Any:
    hints = _hints(config_cls)
    kwargs = {}
    for knob, value in values.items():
        if knob not in hints:
            knobs = ", ".join(hints) or "none"
            close = difflib.get_close_matches(str(knob), ["name", *hints], n=1)
            if close:
                raise ConfigError(f"unknown key '{key}.{knob}'; did you mean {key}.{close[0]}? "
                                  f"({name}'s knobs: {knobs})")
            raise ConfigError(f"{key}.{knob} is not a knob of {name}; its knobs: {knobs}")
        kwargs[knob] = parse(value, hints[knob], f"{key}.{knob}")
    try:
        return config_cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{key} ({name}): {err}") from None


def _build_named(cls: type, value: Any, key: str) -> Any:
    """A section that names a class (a policy, an aggregator) and sets its knobs: `name` and the class's
    Config fields side by side (`policy.name=random-k policy.k=6`), or the name alone
    (`learning.aggregator=fedprox`)."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} is a section: set its keys, e.g. {key}.name=...")
    data = dict(value)
    name = data.pop("name", cls.name)
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name={name!r} is invalid: expected a string")
    try:
        found = NAMED_SECTIONS[cls](name)
    except ValueError as err:
        raise ConfigError(f"{key}.name={name!r} is invalid: {err}") from None
    return cls(name, _knobs(key, name, getattr(found, "Config", NoKnobs), data))


NAMED_SECTIONS: dict[type, Any] = {PolicyConfig: policy_class, AggregatorSettings: aggregator_class}


@dataclass(frozen=True)
class ComputeConfig:
    """Device computation: f_k ~ U[f_min_hz, f_max_hz] (seeded), energy κ·cycles·f², time cycles/f.

    Cycles per sample = cycles_per_flop × FLOPs of one sample through the device part (forward and
    backward), unless `cycles_per_sample` fixes it.
    """

    f_min_hz: float = 0.5e9
    f_max_hz: float = 2e9
    kappa: float = 1e-28
    cycles_per_flop: float = 1.0
    cycles_per_sample: float | None = None

    def __post_init__(self) -> None:
        _need(0 < self.f_min_hz <= self.f_max_hz, "compute.f_min_hz", self.f_min_hz,
              "must be > 0 and <= compute.f_max_hz")
        _need(math.isfinite(self.f_max_hz), "compute.f_max_hz", self.f_max_hz, "must be finite")
        _need(0 < self.kappa < 1, "compute.kappa", self.kappa, "must be in (0, 1)")
        _need(0 < self.cycles_per_flop < 1e6, "compute.cycles_per_flop", self.cycles_per_flop,
              "must be > 0")
        _need(self.cycles_per_sample is None or self.cycles_per_sample > 0, "compute.cycles_per_sample",
              self.cycles_per_sample, "must be > 0 (or null for the model's FLOPs)")


@dataclass(frozen=True)
class ServerConfig:
    """The edge server: a device's local step costs its server part's FLOPs / flops_per_s + overhead_s
    (one call per step), and `accelerators` identical servers serve the devices' requests in the
    order their uploads arrive.

    The defaults stand for one data-centre GPU, fitted to the split-LoRA server step measured on an
    H200 (fp32, 8 × 64 tokens, LoRA r = 8 on query/value, forward + backward): MiniLM-L6 14 ms,
    BERT-base 23 ms, BERT-large 48 ms at 22, 177 and 627 GFLOP; the fit gives them back within
    0.3 ms. Small models are launch-bound: the overhead is most of MiniLM's step.
    """

    flops_per_s: float = 1.78e13
    overhead_s: float = 0.0129
    accelerators: int = 1

    def __post_init__(self) -> None:
        _need(math.isfinite(self.flops_per_s) and self.flops_per_s > 0, "server.flops_per_s",
              self.flops_per_s, "must be > 0 (FLOP/s of one accelerator)")
        _need(math.isfinite(self.overhead_s) and self.overhead_s >= 0, "server.overhead_s",
              self.overhead_s, "must be >= 0 (seconds per call)")
        _need(1 <= self.accelerators <= 1024, "server.accelerators", self.accelerators,
              "an integer from 1 to 1024")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one `cosim run` needs. `seed` seeds ns-3's RngRun, the trainer and the device draws;
    `data_seed` (null: `seed`) the data's train/validation/test split, its partition over the devices
    and any subsample, so that another seed is another draw of the data too, or the same data when
    `data_seed` is fixed."""

    preset: str = "custom"
    rounds: int = 30
    seed: int = 1
    data_seed: int | None = None
    deadline_s: float = 10.0
    energy_budget_j: float = 0.5
    server_time_s: float | None = None
    results_dir: Path = Path("results")
    flow_monitor: bool = False
    csv: bool = False
    calibrate_rate: bool = True  # learn each device's rate efficiency from ns-3 (experiment/calibration.py)
    deadline_margin: float = 0.1  # the scheduler plans for deadline_s × (1 − margin)
    protocol: str = "per-step"  # per-step: split learning; lumped: the paper (experiment/protocol.py)
    transport: str = "shm"  # shm: ns-3 here, over shared memory; zmq: under cosim.ns3_server at ns3_address
    ns3_address: str = "tcp://127.0.0.1:5555"
    ns3_client_key: Path | None = None  # zmq: this client's NAME.key_secret (CURVE; `cosim keys new NAME`)
    ns3_server_key: Path | None = None  # zmq: the server's public NAME.key
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    learning: TrainerConfig = field(default_factory=TrainerConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    # keys that are set from another one, so the two can never disagree
    DERIVED: typing.ClassVar[dict[str, str]] = {
        "scenario.rng_run": "seed",
        "learning.seed": "seed",
        "learning.rounds_hint": "rounds",
        "learning.data.devices": "scenario.devices",
        "learning.data.seed": "data_seed (null: seed)",
        "scenario.flow_monitor_xml": "flow_monitor",
    }

    def __post_init__(self) -> None:
        _need(1 <= self.rounds <= 1_000_000, "rounds", self.rounds, "an integer from 1 to 1000000")
        _need(self.seed >= 1, "seed", self.seed, "must be >= 1")
        _need(self.data_seed is None or self.data_seed >= 0, "data_seed", self.data_seed,
              "must be >= 0 (null: the run's seed)")
        _need(math.isfinite(self.deadline_s) and self.deadline_s > 0, "deadline_s", self.deadline_s,
              "must be > 0")
        _need(math.isfinite(self.energy_budget_j) and self.energy_budget_j > 0, "energy_budget_j",
              self.energy_budget_j, "must be > 0")
        _need(self.server_time_s is None or self.server_time_s >= 0, "server_time_s", self.server_time_s,
              "must be >= 0 (seconds of server compute per device and round; null: the server model)")
        _need(self.preset.replace("-", "").replace("_", "").isalnum(), "preset", self.preset,
              "letters, digits, - and _ only (it names the run folder)")
        _need(0 <= self.deadline_margin < 1, "deadline_margin", self.deadline_margin,
              "a fraction in [0, 1) of the deadline the scheduler keeps in reserve")
        _need(self.protocol in PROTOCOLS, "protocol", self.protocol,
              f"one of {', '.join(PROTOCOLS)} (lumped: the paper's one upload and one download per round)")
        _need(self.transport in TRANSPORTS, "transport", self.transport,
              f"one of {', '.join(TRANSPORTS)} (zmq: ns-3 runs under `python -m cosim.ns3_server`)")
        _need(self.ns3_address.startswith(("tcp://", "ipc://")), "ns3_address", self.ns3_address,
              "a ZMQ address such as tcp://127.0.0.1:5555")
        _need((self.ns3_client_key is None) == (self.ns3_server_key is None), "ns3_client_key",
              self.ns3_client_key, "and ns3_server_key go together: this client's secret key file and the "
              "server's public key file (`cosim keys new NAME` makes a pair)")
        for key in ("ns3_client_key", "ns3_server_key"):
            path = getattr(self, key)
            _need(path is None or self.transport == "zmq", key, path, "is for transport=zmq only")
            _need(path is None or Path(path).expanduser().is_file(), key, path, "no such key file")
        _need(not self.flow_monitor or self.scenario.radio == "lte", "flow_monitor", self.flow_monitor,
              "needs scenario.radio=lte (the ideal-fdma radio has no IP flows for FlowMonitor to count)")
        data = self.learning.data
        _need(isinstance(data.dataset, str) and data.dataset in BUILTIN_DATASETS
              or Path(data.dataset).expanduser().is_file(), "learning.data.dataset", data.dataset,
              f"one of {', '.join(BUILTIN_DATASETS)} or an existing CSV/JSONL file")
        model = self.learning.model.path
        _need(model is None or Path(model).expanduser().is_dir(), "learning.model.path", model,
              "no such folder (null means the packaged all-MiniLM-L6-v2)")
        object.__setattr__(self, "scenario", replace(self.scenario, rng_run=self.seed))
        object.__setattr__(self, "learning", replace(
            self.learning, seed=self.seed, rounds_hint=self.rounds,
            data=replace(data, devices=self.scenario.devices,
                         seed=self.seed if self.data_seed is None else self.data_seed)))

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-safe values (paths as strings, tuples as lists)."""
        return _plain(self)


def _need(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {allowed}")


def _plain(obj: Any) -> Any:
    if type(obj) in NAMED_SECTIONS:
        return _plain(obj.to_dict())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj


# -- loading ----------------------------------------------------------------------------------------

def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config(source: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """A preset name or a YAML path, then `a.b.c=value` overrides applied in order."""
    path = Path(source)
    if not path.suffix and (PRESETS_DIR / f"{source}.yaml").is_file():
        path = PRESETS_DIR / f"{source}.yaml"
    elif not path.is_file():
        raise ConfigError(f"config {str(source)!r} is neither a preset ({', '.join(preset_names())}) "
                          "nor an existing YAML file")
    data = read_mapping(path, "keys to values")
    data.setdefault("preset", path.stem)
    # a run folder's config.yaml lists the derived keys too: they must agree with what they follow
    written = {dotted: value for dotted in ExperimentConfig.DERIVED
               if (value := _pop(data, dotted)) is not _MISSING}
    if written:
        _upgrade_run_folder_config(data, written)
        resolved = build(ExperimentConfig, copy.deepcopy(data)).to_dict()
        for dotted, value in written.items():
            if value != _pop(resolved, dotted):
                raise ConfigError(f"{path}: {dotted}={value!r} disagrees with "
                                  f"{ExperimentConfig.DERIVED[dotted]}, which sets it; remove the line")
    base_policy = dict(data.get("policy") or {})
    apply_overrides(data, overrides, "scenario.devices=20")
    _drop_knobs_not_meant_for(data, base_policy, overrides, from_run_folder=bool(written))
    return build(ExperimentConfig, data)


def _drop_knobs_not_meant_for(data: dict, base: dict, overrides: list[str], from_run_folder: bool) -> None:
    """The knobs the file set for its own policy, when an override names another policy (`cosim run
    smoke policy.name=random-k` leaves smoke's `policy.v` behind), or the knobs of every policy that
    run folders written before each policy had its own knobs list. Knobs set by overrides stay, so
    one the policy does not take is still an error."""
    policy = data.get("policy")
    if not isinstance(policy, dict):
        return
    name = policy.get("name", PolicyConfig.name)
    if name == base.get("name", PolicyConfig.name) and not from_run_folder:
        return
    try:
        takes = {f.name for f in knobs_of(policy_class(name))}
    except ValueError:
        return  # the policy's own error follows
    overridden = {o.partition("=")[0].strip().removeprefix("policy.") for o in overrides
                  if o.strip().startswith("policy.")}
    for key in [k for k in policy if k != "name" and k not in takes and k not in overridden]:
        del policy[key]


def _upgrade_run_folder_config(data: dict, written: dict) -> None:
    """A run folder's config.yaml from before policies and aggregators had their own knobs (every
    policy's knobs listed under `policy`, the aggregator as `learning.server_optimizer`), before
    `data_seed` (the data's seed was `learning.data.seed`, 0 unless set), or before the validation
    split and the dropping of duplicate texts: it continues with the data it started with."""
    if "data_seed" not in data and "learning.data.seed" in written:
        data["data_seed"] = written["learning.data.seed"]
    old_data = data.get("learning", {}).get("data")
    if isinstance(old_data, dict):  # before the validation split, and before duplicates were dropped
        old_data.setdefault("validation_fraction", 0.0)
        old_data.setdefault("deduplicate", False)
    _drop_knobs_not_meant_for(data, data.get("policy") or {}, [], from_run_folder=True)
    learning = data.get("learning")
    if isinstance(learning, dict) and "server_optimizer" in learning:
        learning.setdefault("aggregator", {"name": learning.pop("server_optimizer")})


def read_mapping(path: Path, of: str) -> dict:
    """A YAML file whose top level is a mapping (ConfigError otherwise); `of` says of what."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of {of}")
    return data


def apply_overrides(data: dict, overrides: list[str], example: str) -> None:
    """Set each dotted `key=value` (the value parsed as YAML, empty for null) in the nested mapping."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. {example})")
        _set(data, key.strip(), yaml.safe_load(text) if text.strip() else None)


_MISSING = object()


def _pop(data: dict, dotted: str) -> Any:
    """Remove and return a nested key (_MISSING if absent)."""
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return _MISSING
    return node.pop(leaf, _MISSING)


def _set(data: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parents[: i + 1])} is a value, not a section: cannot set {dotted}")
        node = child
    node[leaf] = value


def valid_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    """Every settable dotted key."""
    keys = []
    for name, tp in _hints(cls).items():
        key = prefix + name
        if _dataclass_of(tp) in NAMED_SECTIONS:
            builtins = POLICIES.values() if _dataclass_of(tp) is PolicyConfig else AGGREGATORS.values()
            knobs = {f"{key}.{f.name}" for c in builtins for f in fields(getattr(c, "Config", NoKnobs))}
            keys += [f"{key}.name", *sorted(knobs)]
        elif _dataclass_of(tp):
            keys += valid_keys(_dataclass_of(tp), key + ".")
        elif key not in ExperimentConfig.DERIVED:
            keys.append(key)
    return keys


def build(cls: type, data: Any, prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a nested mapping, parsing and checking every key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.')} is a section: set its keys, e.g. "
                          f"{valid_keys(cls, prefix)[0]}=...")
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = prefix + str(name)
        if key in ExperimentConfig.DERIVED:
            raise ConfigError(f"{key} is set from {ExperimentConfig.DERIVED[key]}; set that instead")
        if name not in hints:
            close = difflib.get_close_matches(key, valid_keys(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown key {key!r}{hint} (`cosim run --help` explains the keys)")
        sub = _dataclass_of(hints[name])
        if sub in NAMED_SECTIONS:
            kwargs[name] = _build_named(sub, value, key)
            continue
        kwargs[name] = build(sub, value, key + ".") if sub else parse(value, hints[name], key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        section = prefix.rstrip(".") or "config"
        raise ConfigError(f"{section}: {err}") from None


def parse(value: Any, tp: Any, key: str) -> Any:
    """`value` (from YAML or an override) as type `tp`; ConfigError naming the key otherwise."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        is_null = value is None or (isinstance(value, str) and value.lower() in ("null", "none"))
        if is_null and type(None) in args:
            return None
        if str in args and Path in args:  # a name or a path (datasets)
            return str(value)
        last: ConfigError | None = None
        for option in (a for a in args if a is not type(None)):
            try:
                return parse(value, option, key)
            except ConfigError as err:
                last = err
        raise last  # type: ignore[misc]
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "yes", "on", "1"):
                return True
            if text in ("false", "no", "off", "0"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, dict | list):
                raise ValueError
            return str(value)
        if tp is Path:
            return Path(str(value)).expanduser()
        if typing.get_origin(tp) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items)
    except (ValueError, TypeError, OverflowError):
        pass
    else:
        raise ConfigError(f"{key}: unsupported field type {tp}")
    raise ConfigError(f"{key}={value!r} is invalid: expected {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            Path: "a path"}.get(tp, str(tp))


def _hints(cls: type) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


def _dataclass_of(tp: Any) -> type | None:
    return tp if isinstance(tp, type) and is_dataclass(tp) else None
