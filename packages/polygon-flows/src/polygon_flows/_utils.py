"""Small internal helpers shared by the distribution modules."""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(value: object, name: str, min_dim: int) -> Tensor:
    """Return ``value`` if it is a floating tensor with at least ``min_dim`` dims, else raise ValueError."""
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got dtype {value.dtype}")
    if value.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(value.shape)}")
    return value


def broadcast_batch(**shapes: torch.Size) -> torch.Size:
    """Broadcast named batch shapes, raising a ValueError that names them on failure."""
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError as err:
        desc = ", ".join(f"{k}: {tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"batch shapes do not broadcast ({desc})") from err


def gather_component(param: Tensor, idx: Tensor, event_dims: int) -> Tensor:
    """Pick mixture component ``idx`` of ``param``.

    ``param`` has shape ``batch + (K,) + event`` (``len(event) == event_dims``) and ``idx`` has shape
    ``sample + batch``; the result has shape ``sample + batch + event``.
    """
    event = param.shape[param.dim() - event_dims:] if event_dims else torch.Size()
    lead = idx.shape
    full = param.expand(lead[: idx.dim() - (param.dim() - 1 - event_dims)] + param.shape)
    index = idx.reshape(lead + (1,) + (1,) * event_dims).expand(lead + (1,) + event)
    return torch.gather(full, idx.dim(), index).squeeze(idx.dim())
