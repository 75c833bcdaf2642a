"""The machinery every training workflow shares: where it runs, in what precision, across how many
processes, and how its optimizer and learning rate are set up.

Pre-training and fine-tuning both use these, so a change of device policy, of the schedule or of the
weight-decay groups is made once. Nothing here knows about runs, data or configs beyond plain numbers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from randommask.errors import RandomMaskError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str) -> torch.device:
    """``auto`` is the GPU where there is one; asking for ``cuda`` without one is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RandomMaskError("device cuda was asked for, but no CUDA GPU is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def autocast_for(device: torch.device) -> Callable[[], Any]:
    """bf16 autocast on CUDA; full precision on CPU (CPU bf16 is slow and changes results)."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def use_deterministic(device: torch.device) -> None:
    """Deterministic kernels (exact-resume tests). cuBLAS is deterministic only with a fixed workspace,
    read at its first call; on CUDA a few kernels (attention backward) have no deterministic version, so
    there it warns instead of stopping."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")


@dataclass
class Dist:
    """This process's place in a distributed run (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local)


def lr_factor(step: int, warmup: int, total: int, decay_end: int | None = None, floor: float = 0.0) -> float:
    """Linear warm-up to the peak over ``warmup`` steps, then linear decay to zero at ``total`` (BERT's and
    DNABERT's schedule, as a multiplier of the peak learning rate). With ``decay_end`` the decay reaches
    ``floor`` at that step and stays there: the learning rate anneals early and training goes on."""
    if step < warmup:
        return (step + 1) / warmup
    if decay_end is None:
        return max(0.0, (total - step) / max(1, total - warmup))
    return max(floor, 1.0 - (1.0 - floor) * (step - warmup) / max(1, decay_end - warmup))


def linear_schedule(opt: torch.optim.Optimizer, warmup: int, total: int, decay_end: int | None = None,
                    floor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """The scheduler of `lr_factor`; its state (the step) travels in checkpoints."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total, decay_end, floor))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: none on biases and LayerNorm weights (as BERT and DNABERT).
    Frozen parameters are left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(model: torch.nn.Module, lr: float, weight_decay: float, betas: Iterable[float] = (0.9, 0.999),
          eps: float = 1e-8, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`; ``fused`` (one kernel for the whole update) on CUDA."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps,
                             **({"fused": True} if fused else {}))
