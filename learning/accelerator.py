"""Where the learning runs (`learning.device`) and in which precision (`learning.precision`).

Neither changes a simulated number: device and server times come from the compute models and the
FLOPs counted on the modules, payloads from the wire dtype, so a GPU makes a run faster, not
different (bf16 changes the model's numerics slightly, not the network's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str) -> torch.device:
    """`auto`: the GPU when torch sees one, else the CPU; `cuda` where there is none is an error
    saying what this torch is and how to get a CUDA one."""
    if name not in DEVICES:
        raise ValueError(f"learning.device must be one of {DEVICES}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ValueError(f"learning.device=cuda, but torch {torch.__version__} ({build}) sees no GPU: "
                         "install a CUDA build of torch on a GPU node (README, environment.yml) or set "
                         "learning.device=cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def describe(device: torch.device, precision: str) -> dict[str, str]:
    """What the manifest records of where a run learned: the torch device, its name, the precision."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": str(device), "name": name, "precision": precision}


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Forward passes in bf16 where `precision` asks for it (torch autocast: matrix products in bf16,
    reductions and the weights in fp32); nothing changes in fp32."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


def to_device(tree: object, device: torch.device | str) -> object:
    """Every tensor in nested dicts, lists and tuples moved to `device` (checkpoints keep CPU tensors,
    so a run started on a GPU continues on a CPU and back)."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {key: to_device(value, device) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(to_device(value, device) for value in tree)
    return tree
