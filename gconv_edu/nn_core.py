"""What every layer of :mod:`gconv_edu.nn` shares: :class:`Parameter`, :class:`Module`, :class:`Sequential`.

A :class:`Module` finds its parameters and sub-modules by looking at its attributes, as PyTorch's does, so that
``named_parameters()``, ``state_dict()`` / ``load_state_dict()``, ``zero_grad()``, ``train()`` / ``eval()`` and the
printed form work for every layer without each layer repeating them. Import these names from :mod:`gconv_edu.nn`.

Gradients **accumulate**, as in PyTorch: each ``backward`` adds its contribution to ``Parameter.grad``
(:meth:`Parameter.accumulate`), and ``zero_grad()`` sets every ``grad`` back to zeros. So a training step is
``zero_grad(); forward; backward; step`` (what :func:`gconv_edu.nn.train_epoch` does), and two backward passes without
a ``zero_grad`` in between sum their gradients (gradient accumulation over micro-batches).

State dicts hold copies: ``state_dict()`` returns new arrays and ``load_state_dict()`` copies what it is given, so a
saved state never aliases a live model. Keys are PyTorch's (``"0.weight"``, ``"1.running_mean"``). To save and load::

    np.savez("model.npz", **model.state_dict())
    with np.load("model.npz") as saved: model.load_state_dict(saved)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["IncompatibleKeys", "Module", "Parameter", "Sequential", "check_input"]


@dataclass
class Parameter:
    """A trainable array and its gradient (same shape and dtype); ``grad`` starts at zeros."""

    value: np.ndarray
    name: str = ""
    grad: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.grad = np.zeros_like(self.value)

    def accumulate(self, gradient: np.ndarray) -> None:
        """``grad += gradient`` in the value's dtype (a new array: a caller's reference to the old grad is kept)."""
        if gradient.shape != self.value.shape:
            raise ValueError(f"{self.name or 'parameter'}: gradient shape {gradient.shape} != value {self.value.shape}")
        self.grad = np.add(self.grad, gradient, dtype=self.value.dtype)


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (both empty after a strict load), as PyTorch returns."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def check_input(layer: Module, x: Any, ndim: int, channels: int | None = None) -> None:
    """Raise TypeError/ValueError naming the layer unless ``x`` is an ndarray with ``ndim`` dims (and ``channels``)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{type(layer).__name__}: x must be a numpy.ndarray; got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{type(layer).__name__}: x must be {ndim}-D; got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{type(layer).__name__}: x.shape[1]={x.shape[1]} must equal the layer's channels={channels}")


def _indent(text: str, spaces: int) -> str:
    """Indent every line but the first (PyTorch's ``_addindent``), so nested containers print as a tree."""
    return text.replace("\n", "\n" + " " * spaces)


class Module:
    """Base class: ``forward``, ``backward``, parameters, buffers, state dicts, and a train/eval switch.

    Parameters are the :class:`Parameter` attributes, in the order the layer assigned them; buffers are the arrays
    named in ``buffer_names`` (saved in the state dict, not trained: BatchNorm's running statistics); sub-modules come
    from :meth:`named_children` (the layers of a :class:`Sequential`).
    """

    training: bool = True
    buffer_names: tuple[str, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # ----------------------------------------------------------------- parameters, buffers, children
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules with their names (none for a plain layer)."""
        return iter(())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``("0.weight", Parameter)`` pairs: this module's own parameters first, then each child's, recursively."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        """Every :class:`Parameter`, in the order of :meth:`named_parameters` (what an optimiser takes)."""
        return [parameter for _, parameter in self.named_parameters()]

    def _state_entries(self, prefix: str = "") -> Iterator[tuple[str, Module, str]]:
        """``(key, owner, attribute)`` per state-dict entry, in PyTorch's order (parameters, buffers, children)."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, self, name
        for name in self.buffer_names:
            yield prefix + name, self, name
        for name, child in self.named_children():
            yield from child._state_entries(f"{prefix}{name}.")

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to zeros (of the value's shape and dtype), before the next backward."""
        for parameter in self.parameters():
            parameter.grad = np.zeros_like(parameter.value)

    # ----------------------------------------------------------------- state dicts
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter value and buffer, keyed as in PyTorch (``"0.weight"``, ``"1.running_var"``)."""
        return {key: np.array(_stored(owner, attribute), copy=True) for key, owner, attribute in self._state_entries()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy the arrays of ``state_dict`` into this module (cast to each entry's dtype, as PyTorch's ``copy_``).

        Every entry is checked before anything is written, so a failed load leaves the module as it was: a shape
        mismatch is a ValueError naming the key and both shapes; with ``strict`` (the default) missing or unexpected
        keys are a ValueError listing them, without it they are skipped and returned.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of names to arrays; got {type(state_dict).__name__}")
        entries = {key: (owner, attribute) for key, owner, attribute in self._state_entries()}
        missing = [key for key in entries if key not in state_dict]
        unexpected = [key for key in state_dict if key not in entries]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: missing keys {missing}, unexpected keys "
                f"{unexpected} (expected keys: {list(entries)})"
            )
        loaded = {}
        for key, (owner, attribute) in entries.items():
            if key not in state_dict:
                continue
            current, value = _stored(owner, attribute), np.asarray(state_dict[key])
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{key!r}] must be a real numeric array; got dtype {value.dtype}")
            if value.shape != current.shape:
                raise ValueError(
                    f"state_dict[{key!r}] has shape {value.shape}; the shape in this model is {current.shape}"
                )
            loaded[key] = value.astype(current.dtype, copy=True)
        for key, value in loaded.items():
            owner, attribute = entries[key]
            stored = getattr(owner, attribute)
            if isinstance(stored, Parameter):
                stored.value = value
            else:
                setattr(owner, attribute, value)
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- modes and printing
    def train(self, mode: bool = True) -> Module:
        """Training mode (BatchNorm uses batch statistics), for this module and every sub-module."""
        self.training = mode
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def extra_repr(self) -> str:
        """The hyper-parameters shown between the parentheses of the printed form."""
        return ""

    def __repr__(self) -> str:
        children = [f"  ({name}): {_indent(repr(child), 2)}\n" for name, child in self.named_children()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "".join(children) + ")"


def _stored(owner: Module, attribute: str) -> np.ndarray:
    """The array behind a state-dict entry: a Parameter's value, or the buffer itself."""
    stored = getattr(owner, attribute)
    return stored.value if isinstance(stored, Parameter) else stored


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse. Indexable: ``model[0]`` is the first layer.

    Its state-dict keys and parameter names start with the layer's index (``"0.weight"``), as in PyTorch.
    """

    def __init__(self, *layers: Module) -> None:
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layers[{index}]={layer!r} must be a gconv_edu.nn.Module")
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((str(index), layer) for index, layer in enumerate(self.layers))

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)
