"""A user's network as the detector: found by import path or registered from Python, then built
and run once on a few samples before anything is written.

The contract (README, "Your own network")::

    class MyNet(torch.nn.Module):
        def __init__(self, num_inputs: int, num_outputs: int, **its_own_keyword_arguments): ...
        def forward(self, x):  # x: [n, num_inputs] float32 -> [n, num_outputs] float32 logits

``num_inputs`` is 2 ([Re y, Im y]) or 3 (plus log10 N0 with ``model.noise_input``);
``num_outputs`` is k for a bit head or 2^k for a symbol head, chosen by the loss. The output is
always logits (unbounded real numbers): ``bce`` applies the sigmoid itself, as for the MLP. A spec
names the class ``package.module:ClassName``; a class defined in a notebook is registered under
``module:qualname`` (``__main__:MyNet``) and shipped to the workers by value (cloudpickle).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path

import torch
from symgrid.trainables.messages import first_line
from symgrid.trainables.schema import ConfigError
from torch import nn

__all__ = [
    "BUILTIN_MODELS",
    "accepts",
    "build",
    "check",
    "describe",
    "freeze",
    "instantiate",
    "load_classes",
    "register_all",
    "registered_for",
    "resolve",
    "save_classes",
    "with_class_names",
]

BUILTIN_MODELS = ("mlp", "baseline")
RESERVED = ("num_inputs", "num_outputs")  # symgrid passes these itself
CHECK_SAMPLES = 4  # the forward check's batch
CLASSES_FILE = "classes.pkl"  # a run's registered classes, by value, for resume and confirm
# Classes given as objects (a notebook's), by name; the workers get them through the run.
_REGISTERED: dict[str, type] = {}


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register(cls: object) -> str:
    """Register a network class given as an object; its name for the config."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError("model.name", f"{cls!r} is not a torch.nn.Module subclass")
    name = class_name(cls)
    _REGISTERED[name] = cls
    return name


def with_class_names(tree: object) -> object:
    """``tree`` (a spec or config as data) with every network class in it replaced by its
    registered name, so that the tree is plain data again."""
    if isinstance(tree, type) and issubclass(tree, nn.Module):
        return register(tree)
    if isinstance(tree, Mapping):
        return {key: with_class_names(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [with_class_names(value) for value in tree]
    return tree


def registered_for(configs: list[dict]) -> dict[str, type]:
    """The registered classes the trial configs name (what the workers must be given)."""
    names = {c["model"]["name"] for c in configs}
    return {name: cls for name, cls in _REGISTERED.items() if name in names}


def register_all(classes: Mapping[str, type]) -> None:
    _REGISTERED.update(classes)


def save_classes(classes: Mapping[str, type], folder: Path) -> None:
    """Keep a run's registered classes by value, so ``resume`` and ``confirm`` find them."""
    if classes:
        import cloudpickle  # Ray's dependency

        (Path(folder) / CLASSES_FILE).write_bytes(cloudpickle.dumps(dict(classes)))


def load_classes(folder: Path) -> None:
    path = Path(folder) / CLASSES_FILE
    if path.exists():
        import cloudpickle

        register_all(cloudpickle.loads(path.read_bytes()))


def resolve(name: str, path: str = "model.name") -> type:
    """The class a model name stands for: registered, or imported from ``package.module:Class``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    module_name, sep, qualname = name.partition(":")
    if not sep or not module_name or not qualname:
        raise ConfigError(path, f"{name!r}; allowed: mlp, baseline, or package.module:ClassName")
    if module_name == "__main__":
        raise ConfigError(path, f"{name!r} was not passed as a class; pass the class object")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(f"{err.name}.")):
            raise ConfigError(
                path,
                f"module {module_name!r} not found (is its folder the current one or on"
                " PYTHONPATH?)",
            ) from None
        raise ConfigError(
            path, f"importing {module_name!r} failed: {first_line(err, typed=True)}"
        ) from None
    except Exception as err:
        raise ConfigError(
            path, f"importing {module_name!r} failed: {first_line(err, typed=True)}"
        ) from None
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(path, f"module {module_name!r} has no {qualname!r}")
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ConfigError(path, f"{name!r} is a {type(obj).__name__}, not a torch.nn.Module class")
    return obj


def accepts(cls: type, key: str) -> bool:
    params = inspect.signature(cls).parameters.values()
    return any(p.name == key or p.kind is p.VAR_KEYWORD for p in params)


def check_arguments(cls: type, name: str, kwargs: dict) -> None:
    """Unknown, missing and reserved keyword arguments, against ``cls.__init__``'s signature."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = {k: p for k, p in inspect.signature(cls).parameters.items() if p.kind in named}
    open_ = accepts(cls, "\0")  # takes **kwargs
    for key in RESERVED:
        if key in kwargs:
            raise ConfigError(f"model.{key}", "set by symgrid from the modulation and the loss")
        if not open_ and key not in params:
            raise ConfigError("model.name", f"{name} must take {', '.join(RESERVED)}")
    allowed = [k for k in params if k not in RESERVED]
    for key in kwargs:
        if not open_ and key not in params:
            raise ConfigError(
                f"model.{key}", f"not an argument of {name}; allowed: {', '.join(allowed)}"
            )
    empty = inspect.Parameter.empty
    missing = [k for k in allowed if params[k].default is empty and k not in kwargs]
    if missing:
        raise ConfigError("model", f"{name} needs {', '.join(missing)}; give model.{missing[0]}")


def build(cls: type, name: str, num_inputs: int, num_outputs: int, kwargs: dict) -> nn.Module:
    """``cls(num_inputs=..., num_outputs=..., **kwargs)``; its exceptions as one line."""
    try:
        return cls(num_inputs=num_inputs, num_outputs=num_outputs, **kwargs)
    except Exception as err:
        raise ConfigError("model", f"{name}(...) raised {first_line(err, typed=True)}") from None


@functools.lru_cache(maxsize=256)
def _checked(cls: type, name: str, num_inputs: int, num_outputs: int, frozen: tuple) -> int:
    kwargs = {key: thaw(value) for key, value in frozen}
    check_arguments(cls, name, kwargs)
    with torch.random.fork_rng(devices=[]):  # nothing leaks into the caller's random state
        torch.manual_seed(0)
        model = build(cls, name, num_inputs, num_outputs, kwargs)
        if not isinstance(model, nn.Module):
            raise ConfigError("model", f"{name}(...) built a {type(model).__name__}")
        x = torch.randn(CHECK_SAMPLES, num_inputs)
        try:
            with torch.no_grad():
                output = model.eval()(x)
        except Exception as err:
            raise ConfigError(
                "model", f"{name}.forward raised {first_line(err, typed=True)}"
            ) from None
    want = [CHECK_SAMPLES, num_outputs]
    tensor = isinstance(output, torch.Tensor)
    if not tensor or list(output.shape) != want or not output.is_floating_point():
        got = list(output.shape) if tensor else type(output).__name__
        raise ConfigError(
            "model",
            f"{name} maps [{CHECK_SAMPLES}, {num_inputs}] to {got}; the loss's head"
            f" needs {want} float logits (k for a bit head, 2^k for a symbol head)",
        )
    return sum(p.numel() for p in model.parameters())


def check(name: str, kwargs: tuple, num_inputs: int, num_outputs: int, dropout: float) -> int:
    """Import, build and run the network once on a few samples; its parameter count.

    Raises :class:`ConfigError` (one line naming ``model``) on any problem. ``dropout`` > 0 is
    passed as the network's ``dropout`` argument, so the network must take one.
    """
    cls = resolve(name)
    if dropout > 0:
        if not accepts(cls, "dropout"):
            raise ConfigError(
                "regularization",
                f"dropout {dropout:g} would do nothing: {name} takes no 'dropout' argument; add"
                " one to its __init__ (and use it) or remove the setting",
            )
        kwargs = (*kwargs, ("dropout", dropout))
    return _checked(cls, name, num_inputs, num_outputs, tuple(sorted(kwargs)))


def instantiate(name: str, kwargs: tuple, num_inputs: int, num_outputs: int, dropout: float):
    """The network a trial trains (checked first: a worker sees the same errors)."""
    check(name, kwargs, num_inputs, num_outputs, dropout)
    options = {key: thaw(value) for key, value in kwargs}
    if dropout > 0:
        options["dropout"] = dropout
    return build(resolve(name), name, num_inputs, num_outputs, options)


def freeze(value: object, path: str) -> object:
    """A keyword argument's value as hashable plain data (lists become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v, f"{path}[{i}]") for i, v in enumerate(value))
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(path, f"{value!r}: allowed: numbers, strings, true/false, null, lists")


def thaw(value: object) -> object:
    return [thaw(v) for v in value] if isinstance(value, tuple) else value


def describe(name: str, kwargs: tuple) -> str:
    """``nets:ResMLP(depth=2, width=32)``: how tables and reports name a user network."""
    args = ", ".join(f"{key}={thaw(value)}" for key, value in kwargs)
    return f"{name}({args})" if args else name
