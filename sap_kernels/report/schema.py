"""What a ``report.json`` must hold to be drawn (the layout in ``report.data``), checked field by
field when it is read: a field of the wrong type, a missing one or a class index out of range is a
``ValueError`` naming the file and the field (``layers[2].K``), never an error deep in the drawing."""
from __future__ import annotations

from typing import Any, Callable, Union


class Leaf:
    """A value checked by a predicate; ``text`` says what it must be."""

    def __init__(self, text: str, test: Callable[[Any], bool]) -> None:
        self.text, self.test = text, test


class ListOf:
    """A list whose every item is ``item``."""

    def __init__(self, item: Spec) -> None:
        self.item = item


class Row:
    """A list of exactly ``len(items)`` values, each its own spec (a JSON tuple)."""

    def __init__(self, *items: Spec) -> None:
        self.items = items


class Optional_:
    """``spec`` or null."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec


Spec = Union[Leaf, ListOf, Row, Optional_, "dict[str, Any]"]
MAYBE = "?"  # a key ending in "?" may be absent

INT = Leaf("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
NUM = Leaf("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
STR = Leaf("a string", lambda v: isinstance(v, str))
BOOL = Leaf("true or false", lambda v: isinstance(v, bool))
STR_MAP = Leaf("an object of numbers", lambda v: isinstance(v, dict) and all(NUM.test(x) for x in v.values()))

LAYER = {"name": STR, "kind": STR, "K": INT, "groups": INT, "rows": INT, "method": STR, "rank99": Optional_(INT),
         "energies": Optional_(ListOf(NUM)), "tied?": ListOf(STR)}
ISSUES = {"n_samples": INT, "n_issues": INT, "rule": STR, "alpha": Optional_(NUM), "class_names": ListOf(STR),
          "notices": ListOf(STR), "pair_counts": ListOf(ListOf(INT)), "top_pairs": ListOf(Row(INT, INT, INT)),
          "top": ListOf(Row(INT, INT, INT, NUM, BOOL)),
          "grid": {"file": Optional_(STR), "positions": ListOf(INT), "why": STR},
          "labels?": Leaf("an object of [given, predicted] pairs",
                          lambda v: isinstance(v, dict) and all(_fits(x, Row(INT, INT)) for x in v.values()))}
REPORT = {"alpha": Optional_(NUM), "scores": ListOf(Row(Optional_(NUM), NUM)), "rule": STR, "validation": STR,
          "warnings": ListOf(STR), "notices": ListOf(STR), "n_samples": INT, "n_trusted": INT, "timings": STR_MAP,
          "skipped": ListOf(Row(STR, STR)), "layers": ListOf(LAYER), "label_issues?": Optional_(ISSUES),
          "variant?": {"mode": STR, "location": STR, "rounds": INT}}


def _describe(spec: Spec) -> str:
    if isinstance(spec, Leaf):
        return spec.text
    if isinstance(spec, Optional_):
        return f"{_describe(spec.spec)} or null"
    if isinstance(spec, ListOf):
        return "a list"
    if isinstance(spec, Row):
        return f"a list of {len(spec.items)} values"
    return "an object"


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _fits(value: Any, spec: Spec) -> bool:
    try:
        check(value, spec, "")
    except ValueError:
        return False
    return True


def check(value: Any, spec: Spec, where: str) -> None:
    """Raise ``ValueError("field 'where' must be ..., got ...")`` at the first value off ``spec``."""
    if isinstance(spec, Optional_):
        if isinstance(spec.spec, Leaf) and value is not None and not spec.spec.test(value):
            raise ValueError(f"field {where!r} must be {_describe(spec)}, got {_got(value)}")
        if value is not None:
            check(value, spec.spec, where)
        return
    ok = (spec.test(value) if isinstance(spec, Leaf) else isinstance(value, list) if isinstance(spec, (ListOf, Row))
          else isinstance(value, dict))
    if not ok or (isinstance(spec, Row) and len(value) != len(spec.items)):
        raise ValueError(f"field {where or 'the top level'!r} must be {_describe(spec)}, got {_got(value)}")
    if isinstance(spec, ListOf):
        for i, item in enumerate(value):
            check(item, spec.item, f"{where}[{i}]")
    elif isinstance(spec, Row):
        for i, (item, sub) in enumerate(zip(value, spec.items)):
            check(item, sub, f"{where}[{i}]")
    elif isinstance(spec, dict):
        for key, sub in spec.items():
            name = key.rstrip(MAYBE)
            field = f"{where}.{name}" if where else name
            if name not in value:
                if key.endswith(MAYBE):
                    continue
                raise ValueError(f"field {field!r} is missing")
            check(value[name], sub, field)


def _check_classes(section: dict[str, Any]) -> None:
    """Every class index of the label-issues section names one of its ``class_names``."""
    c = len(section["class_names"])
    counts = section["pair_counts"]
    if len(counts) != c or any(len(row) != c for row in counts):
        raise ValueError(f"field 'label_issues.pair_counts' must be {c} x {c} (one row and column per class)")
    rows = [("top_pairs", i, r[:2]) for i, r in enumerate(section["top_pairs"])]
    rows += [("top", i, r[1:3]) for i, r in enumerate(section["top"])]
    rows += [("labels", k, r) for k, r in section.get("labels", {}).items()]
    for name, i, classes in rows:
        if any(not 0 <= k < c for k in classes):
            raise ValueError(f"field 'label_issues.{name}[{i!r}]' holds a class index outside 0..{c - 1}")


def check_report(data: Any) -> None:
    """``data`` (a parsed ``report.json``) can be drawn, or a ``ValueError`` naming the field."""
    check(data, REPORT, "")
    if data.get("label_issues"):
        _check_classes(data["label_issues"])
