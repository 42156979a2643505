"""Where a policy runs and in which float type: the one default device, the named dtypes, the record.

``predict``, ``eval``, ``explain`` and ``serve`` all load a model folder onto :func:`default_device`
unless told otherwise, so a GPU user's evaluation never silently runs on the CPU; every output they
write carries :func:`placement` of the policy that made it, because the same weights give slightly
different answers in bfloat16 than in float32, and on a GPU than on a CPU.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable, Iterator
from types import FunctionType, ModuleType
from typing import Any, TypeVar

import torch

T = TypeVar("T")

logger = logging.getLogger(__name__)

__all__ = ["DTYPES", "default_device", "dtype_named", "placement", "processes", "leave_group_at_exit",
           "batches_in_turn"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The float types a model can be loaded in, by the name the command line and the records use."""


def default_device() -> str:
    """CUDA when torch sees a GPU, else the CPU; under ``accelerate launch`` (``LOCAL_RANK`` set) each process
    takes the GPU of its local rank, as accelerate places it."""
    if not torch.cuda.is_available():
        return "cpu"
    local_rank = os.environ.get("LOCAL_RANK")
    return f"cuda:{int(local_rank)}" if local_rank is not None else "cuda"


def dtype_named(name: str) -> torch.dtype:
    """The torch dtype of a name in :data:`DTYPES`; any other name is an error that lists them."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}") from None


def placement(module: torch.nn.Module) -> dict[str, str | None]:
    """``{"device": ..., "dtype": ...}`` of a module's first floating-point parameter (where it computes);
    both None for a module without one (a stand-in model), which has nothing to record."""
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return {"device": str(parameter.device), "dtype": str(parameter.dtype).removeprefix("torch.")}
    return {"device": None, "dtype": None}


def processes():
    """The processes ``accelerate launch`` started (accelerate's ``PartialState``; one process otherwise), for
    work shared between them outside training (evaluation). CPU processes form a gloo group only with
    ``ACCELERATE_USE_CPU=true``, read here as accelerate's ``Accelerator`` reads it; a launch that formed no
    group is refused, since every process would then do all the work and write the same files."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and state.num_processes == 1:
        raise RuntimeError(f"launched as {world_size} processes (WORLD_SIZE) but they formed no process group; "
                           "without GPUs launch with ACCELERATE_USE_CPU=true")
    leave_group_at_exit()
    return state


_leaving = False


def leave_group_at_exit() -> None:
    """Destroy the process group when the interpreter exits, once per process, if one was formed.

    A process that exits with its group still standing leaves gloo's worker threads holding tensors; the
    interpreter's finalisation then aborts it (``terminate called without an active exception``, SIGABRT),
    at random, after all its work is written, and ``accelerate launch`` reports the whole run as failed.
    Accelerate destroys the group only in ``end_training``, which also ends the trackers, too early for a
    run's final save; torch does not do it for us (pytorch/pytorch#190489). Destroying is not enough on its
    own: see :func:`_release_captured_group`."""
    global _leaving
    if _leaving or not torch.distributed.is_initialized():
        return
    _leaving = True
    atexit.register(_destroy_group)


def _destroy_group() -> None:
    if not torch.distributed.is_initialized():
        return
    group = torch.distributed.group.WORLD
    torch.distributed.destroy_process_group()
    _release_captured_group(group)
    # Ours (the local name) and getrefcount's argument: any more and the group outlives this call.
    if sys.getrefcount(group) > 2:
        logger.warning("the process group is still referenced after destroy_process_group; gloo's threads stay "
                       "up until the interpreter's finalisation, which can abort the process (SIGABRT)")
    del group   # the last reference: gloo's worker threads are joined here, with the GIL released


def _release_captured_group(group: object) -> None:
    """Put None where a ``torch.distributed`` function holds ``group`` as a default argument.

    Some of torch's modules take ``group.WORLD`` as a default when they are imported
    (``torch.distributed.nn.functional``: ``def broadcast(tensor, src, group=group.WORLD)`` and nine more;
    ``optim.zero_redundancy_optimizer``; ``fsdp.sharded_grad_scaler``): None when no group has formed yet,
    the group itself when one has. transformers imports them while it loads a model (through
    ``torch.distributed.fsdp``), which a launched process does after forming its group, so those defaults
    keep the group, and gloo's worker threads, alive past ``destroy_process_group``. The threads then meet
    the interpreter's finalisation: one still releasing the last collective's work has to take the GIL to
    free a tensor's Python object, finalisation makes it exit instead, and that exit unwinds through C++
    that may not throw: ``std::terminate``, SIGABRT (seen on a loaded machine, where that thread lags the
    main one). None is what the defaults hold in a process that imported them first: the default group."""
    # type(), not isinstance(): a few of torch's objects warn when their attributes are read (reduce_op).
    for name, module in list(sys.modules.items()):
        if not isinstance(module, ModuleType) or not (name == "torch.distributed"
                                                      or name.startswith("torch.distributed.")):
            continue
        for value in list(vars(module).values()):
            members = list(vars(value).values()) if issubclass(type(value), type) else [value]
            for member in members:
                function = member.__func__ if type(member) in (staticmethod, classmethod) else member
                if type(function) is not FunctionType:
                    continue
                if function.__defaults__ and any(default is group for default in function.__defaults__):
                    function.__defaults__ = tuple(None if d is group else d for d in function.__defaults__)
                if function.__kwdefaults__ and any(d is group for d in function.__kwdefaults__.values()):
                    function.__kwdefaults__ = {k: None if d is group else d
                                               for k, d in function.__kwdefaults__.items()}


def batches_in_turn(batches: list[Any], work: Callable[[Any], T]) -> Iterator[tuple[int, T]]:
    """``(index, work(batch))`` for every batch, in batch order, in every process; the batches are shared
    between the processes of :func:`processes`: each computes one batch of every round of N, and each round's
    results (pickled) are gathered to all. The batches are the ones a single process would compute, with the
    same batch-mates, so padding, and so every number, is what one process gives."""
    from accelerate.utils import gather_object

    state = processes()
    count, rank = state.num_processes, state.process_index
    for first in range(0, len(batches), count):
        mine = work(batches[first + rank]) if first + rank < len(batches) else None
        for offset, result in enumerate(gather_object([mine]) if count > 1 else [mine]):
            if first + offset < len(batches):
                yield first + offset, result
