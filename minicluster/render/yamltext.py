"""YAML text for the rendered files: keys in the order given, multi-line strings as blocks.

PyYAML's default quotes a multi-line PromQL expression into one unreadable line; the
representer below writes it as a `|` block, the way rule files are written by hand.
"""

from __future__ import annotations

import yaml


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper that writes strings containing newlines as literal blocks."""

    def ignore_aliases(self, data: object) -> bool:
        # A section shared by several jobs is written out in each: &id001/*id001 anchors
        # would make the files hard to read and to compare.
        return True


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _str_representer)


def dump_yaml(data: object, header: str = "") -> str:
    """`data` as YAML; `header` lines become leading `# ` comments."""
    body = yaml.dump(
        data, Dumper=_BlockDumper, sort_keys=False, width=4096, default_flow_style=False
    )
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + body
