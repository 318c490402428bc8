"""YAML as prefclean reads it: PyYAML's safe loader, except that a key given twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so a second `judges:` or `temperature:` further down a
file would silently replace the first: prefclean never ignores what a user wrote.

Parsed by libyaml (PyYAML's CSafeLoader) where PyYAML has it, as its wheels do: the same documents, values and
line numbers, ~10x faster than PyYAML's pure-Python parser (~10 ms of every build's start for the example
project's two files). A document libyaml refuses is read again by PyYAML's own parser, whose error says more
(which character, which alias).
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping that names one key twice (problem_mark: the second one)."""


class _Strict:
    """The duplicate-key check, for either parser."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not key_node.start_mark and key != "<<":
                    raise DuplicateKeyError(None, None, f"key `{key}` is given twice (first on line {first.line + 1})",
                                            key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


class _StrictLoader(_Strict, yaml.SafeLoader):
    pass


_FastLoader = type("_FastLoader", (_Strict, yaml.CSafeLoader), {}) if hasattr(yaml, "CSafeLoader") else None


def load_yaml(text: str) -> Any:
    """Parse YAML text like yaml.safe_load, refusing duplicate keys (raises yaml.YAMLError)."""
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a SafeLoader subclass
        except DuplicateKeyError:
            raise
        except yaml.YAMLError:
            pass  # PyYAML's parser below names the problem in more words
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
