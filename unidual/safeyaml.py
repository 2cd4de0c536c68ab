"""YAML loading that refuses alias bombs before anything is expanded.

``yaml.safe_load`` builds aliased nodes as shared Python objects, so a
"billion laughs" file loads quickly and only explodes later, when a deep copy,
``dataclasses.asdict`` or a dump walks it. Here the composed node graph is
measured first (a node counts once per path that reaches it, computed with a
memo, so measuring is linear in the file) and documents whose expanded size is
past a limit are refused.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_EXPANDED_NODES = 1_000_000  # nodes after expanding every alias (a big config has a few thousand)


class YamlLimitError(yaml.YAMLError):
    """The document is valid YAML but expands past the limits (an alias bomb)."""


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once (PyYAML refuses to construct it anyway)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, limit)
            if size > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, limit) + _expanded_size(v, memo, limit)
            if size > limit:
                break
    memo[key] = size
    return size


def safe_load(text: str, *, max_nodes: int = MAX_EXPANDED_NODES) -> Any:
    """Like ``yaml.safe_load`` but raises :class:`YamlLimitError` for alias bombs."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, max_nodes)
        if size > max_nodes:
            raise YamlLimitError(
                f"expands to more than {max_nodes} values through aliases; refused as a possible alias bomb"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()
