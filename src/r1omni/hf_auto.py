"""HumanOmni in transformers' Auto classes, without making ``import r1omni`` import transformers.

After ``import r1omni``, ``AutoConfig.from_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` read a
HumanOmni folder (``model_type: HumanOmni_qwen2``) as they read a model transformers ships. Importing the
HumanOmni code costs seconds (transformers, torch), which ``r1omni --help`` and the contract modules must
not pay, so :func:`install` only places an import hook: when transformers' auto-model module
(:data:`TRIGGER`) has loaded, i.e. when a caller reaches for the Auto classes, the HumanOmni modules are
imported, and they register themselves (``r1omni.models.humanomni.configuration`` and ``.modeling`` end
with the ``register`` calls, so importing them directly registers too).

Standard library only. Not here: the classes (``r1omni.models.humanomni``) or loading through r1omni
(``r1omni.models.load_policy``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["install", "TRIGGER"]

TRIGGER = "transformers.models.auto.modeling_auto"
"""The module whose loading means a caller is about to use ``AutoModel*`` (it also loads ``AutoConfig``'s)."""
_HUMANOMNI_MODULES = ("r1omni.models.humanomni.configuration", "r1omni.models.humanomni.modeling")


def _register() -> None:
    """Import the HumanOmni modules, which register themselves. One that is being imported right now
    (transformers was loaded on its behalf) comes back unfinished from ``import_module`` and registers
    when it finishes."""
    for name in _HUMANOMNI_MODULES:
        importlib.import_module(name)


class _RegisterAfterLoading(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps the real loader of :data:`TRIGGER` so that :func:`_register` runs
    once the module has executed, then steps out of ``sys.meta_path``."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TRIGGER:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module) -> None:
            execute(module)
            _register()

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register HumanOmni now when transformers' Auto classes are already loaded, else when they load."""
    if TRIGGER in sys.modules:
        _register()
    elif not any(isinstance(finder, _RegisterAfterLoading) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterLoading())
