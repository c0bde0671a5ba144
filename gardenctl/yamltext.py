"""YAML for people and for other tools: block style, key order kept, and never anchors or aliases (``&id001`` /
``*id001`` appear when one object is referenced twice; k9s, Patroni and readers should not have to resolve them)."""

from __future__ import annotations

from typing import Any

import yaml


class PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any, stream: Any = None, **kwargs: Any) -> Any:
    kwargs.setdefault("sort_keys", False)
    kwargs.setdefault("default_flow_style", False)
    return yaml.dump(data, stream, Dumper=PlainDumper, **kwargs)
