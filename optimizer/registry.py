"""Policies by name: a built-in's (optimizer/policies.py) or any class's import path, `module:Class`."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any

from optimizer.policies import POLICIES
from optimizer.policy import NoKnobs, Policy, PolicyContext

CONTRACT = ("a policy is a class with plan(inputs) -> Plan and observe(plan, realised_energy_j) "
            "(optimizer/policy.py)")


def policy_class(name: str) -> type:
    """The class `name` refers to; ValueError saying what is wrong (unknown name, a module that does
    not import, with its exception, a missing class, a class that is not a policy)."""
    if name in POLICIES:
        return POLICIES[name]
    if ":" not in name:
        close = difflib.get_close_matches(name, POLICIES, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"{name!r} is not a policy{hint}: give a built-in one ({', '.join(POLICIES)}) or "
                         "the import path of your class, module:Class (e.g. my_policies:ProportionalFair)")
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        where = " (is its folder on PYTHONPATH?)" if isinstance(err, ModuleNotFoundError) else ""
        raise ValueError(f"{name!r}: module {module_name!r} does not import{where}: "
                         f"{type(err).__name__}: {err}") from err
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            classes = sorted(n for n, v in vars(module).items()
                             if isinstance(v, type) and not n.startswith("_"))
            raise ValueError(f"{name!r}: module {module_name!r} has no {attribute!r} "
                             f"(its classes: {', '.join(classes) or 'none'})")
        found = getattr(found, part)
    if not isinstance(found, type):
        raise ValueError(f"{name!r} is a {type(found).__name__}, not a class; {CONTRACT}")
    missing = [method for method in ("plan", "observe") if not callable(getattr(found, method, None))]
    if missing:
        raise ValueError(f"{name!r} has no {' and no '.join(missing)}; {CONTRACT}")
    config = getattr(found, "Config", NoKnobs)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise ValueError(f"{name!r}: its Config must be a dataclass of its knobs, got {config!r}")
    return found


def knobs_of(cls: type) -> tuple[dataclasses.Field, ...]:
    """The typed knobs (`policy.*` keys) the policy class takes."""
    return dataclasses.fields(getattr(cls, "Config", NoKnobs))


def build_policy(name: str, config: object, context: PolicyContext) -> Policy:
    """The policy `name` built as the run builds it: ``cls(config, context)``."""
    return policy_class(name)(config, context)


def make_policy(name: str, *, rounds: int = 30, seed: int = 0, devices: int | None = None, threads: int = 1,
                **knobs: Any) -> Policy:
    """The policy `name` with `knobs` (its Config's fields), for use outside a run."""
    cls = policy_class(name)
    config_cls = getattr(cls, "Config", NoKnobs)
    takes = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(knobs) - set(takes))
    if unknown:
        raise ValueError(f"{name} takes no knob {unknown[0]!r}; its knobs: {', '.join(takes) or 'none'}")
    return cls(config_cls(**knobs), PolicyContext(rounds, seed, devices, threads))
