"""README "Use as a library" matches the code: each construct's props are exactly its keyword-only arguments, and
each listed attribute is set by the construct (or is a dataclass field / method of the model)."""

from __future__ import annotations

import dataclasses
import inspect
import re

import eks_multus_cdk
from tests.conftest import REPO


def library_table() -> dict[str, tuple[set[str], set[str]]]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Use as a library"):text.index("## Security")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        name_cell, props_cell, attrs_cell = [c.strip() for c in row.strip("|").split("|")]
        name = re.match(r"`(\w+)`", name_cell).group(1)

        def names(cell: str) -> set[str]:
            # drop parenthesised remarks, then take every `identifier` (a trailing `(...)` call is a method)
            cell = re.sub(r" \([^()]*\)", "", cell)
            return {m for m in re.findall(r"`(\w+)(?:\([^`]*\))?`", cell)}

        table[name] = (names(props_cell), names(attrs_cell))
    return table


def test_every_exported_construct_is_in_the_table_with_its_exact_props():
    table = library_table()
    exported = {n for n in eks_multus_cdk.__all__ if n[0].isupper() and n not in ("Taint", "MultusSubnetLayout")}
    assert exported == set(table), "README table vs eks_multus_cdk.__all__"
    for name, (props, _) in table.items():
        cls = getattr(eks_multus_cdk, name)
        if dataclasses.is_dataclass(cls):
            expected = {f.name for f in dataclasses.fields(cls) if f.init}
        else:
            expected = {p.name for p in inspect.signature(cls.__init__).parameters.values()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert props == expected, name


def test_every_listed_attribute_is_set_by_the_construct():
    for name, (_, attrs) in library_table().items():
        cls = getattr(eks_multus_cdk, name)
        source = inspect.getsource(cls)
        for attr in attrs:
            assert re.search(rf"self\.{attr}\b|def {attr}\b|^\s+{attr}: ", source, re.M) or \
                (dataclasses.is_dataclass(cls) and attr in {f.name for f in dataclasses.fields(cls)}), (name, attr)
