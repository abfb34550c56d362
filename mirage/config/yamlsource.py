"""YAML that remembers where every value came from, and refuses what PyYAML lets slip.

libyaml (CSafeLoader) composes the node graph when it is installed, the pure-Python SafeLoader otherwise; the
values are built here from the nodes, which is faster than PyYAML's constructors and lets us:
  * reject duplicate mapping keys (PyYAML keeps the last one silently);
  * bound what aliases expand to (a "billion laughs" document), the nesting depth and the file size;
  * keep `22:00` a time and `+5511…` a phone number, where YAML 1.1 reads a base-60 or a signed integer;
  * keep every mapping key a string (`off:` stays "off", it is not the boolean false);
  * refuse text holding a NUL character ("\\0", "\\u0000"), which Postgres text and jsonb cannot store.
Positions are looked up on demand (`Source.locate`); the node graph is dropped once a tenant is loaded and
composed again from the kept text only when something needs a line number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mirage.config.types import NUL, NUL_MESSAGE, excerpt

MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_NODES = 500_000  # values a document may expand to, aliases included
MAX_DEPTH = 64

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
LIBYAML = _BaseLoader is not yaml.SafeLoader

_PLAIN = "?"  # tag our resolver gives untagged plain scalars; _scalar() resolves them
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE_KEY = "<<"

_SPECIAL: dict[str, Any] = {
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"), False),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
}
_NUMERIC_START = frozenset("0123456789-+.")
_INT = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$")
_DATE = re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$")
_DATETIME = re.compile(
    r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?"
    r"(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?$"
)
_TAGGED = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}


class YamlError(Exception):
    """A problem that stops reading one file, at 1-based line:col."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


class _DeferToBuilder:
    """Resolver overrides: plain scalars are resolved by plain_scalar(), path resolvers are skipped."""

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _MAP if kind is MappingNode else _SEQ

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


class _Loader(_DeferToBuilder, _BaseLoader):  # type: ignore[misc]
    """libyaml's CSafeLoader when installed, else PyYAML's SafeLoader."""


class PurePythonLoader(_DeferToBuilder, yaml.SafeLoader):
    """The pure-Python composer (used where libyaml is missing; tests check both agree)."""


def compose(text: str, loader_class: type[Any] = _Loader) -> Node | None:
    """The document's node graph (None for an empty document); YamlError on a syntax error."""
    loader = loader_class(text)
    try:
        node: Node | None = loader.get_single_node()
        return node
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = e.problem or e.context or "invalid YAML"
        if e.problem and e.context and not e.context.startswith("while"):
            what = f"{e.context}, {e.problem}"  # "expected a single document in the stream, but found another"
        raise YamlError(line, col, f"YAML syntax error: {what}") from None
    except yaml.reader.ReaderError as e:
        before = text[: e.position]
        raise YamlError(
            before.count("\n") + 1, e.position - before.rfind("\n"), f"YAML syntax error: {e.reason}"
        ) from None
    except yaml.YAMLError as e:
        raise YamlError(1, 1, f"YAML syntax error: {e}") from None
    except RecursionError:  # the pure-Python composer recurses; libyaml stops at depth 1000 by itself
        raise YamlError(1, 1, "YAML syntax error: nesting too deep") from None
    finally:
        loader.dispose()


def _int(text: str) -> int:
    v = text.replace("_", "")
    sign = -1 if v[0] == "-" else 1
    if v[0] in "+-":
        v = v[1:]
    if v == "0":
        return 0
    if v.startswith("0b"):
        return sign * int(v[2:], 2)
    if v.startswith("0x"):
        return sign * int(v[2:], 16)
    if v[0] == "0":
        return sign * int(v, 8)
    return sign * int(v)


def _timestamp(m: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second, frac, tz, sign, tzh, tzm = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tzinfo = None
    if tz == "Z":
        tzinfo = UTC
    elif tz:
        delta = timedelta(hours=int(tzh), minutes=int(tzm or 0))
        tzinfo = timezone(-delta if sign == "-" else delta)
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tzinfo)


def plain_scalar(text: str) -> Any:
    """Resolve an untagged plain scalar like YAML 1.1, except base-60 numbers and '+' numbers stay strings."""
    if text in _SPECIAL:
        return _SPECIAL[text]
    if text[0] not in _NUMERIC_START or text[0] == "+":
        return text
    try:
        if _INT.match(text):
            return _int(text)
        if _FLOAT.match(text):
            return float(text.replace("_", ""))
    except ValueError:  # `0x_`, `._`, or more digits than int() converts: no number, so the text itself
        return text
    if m := _DATE.match(text):
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return text
    if m := _DATETIME.match(text):
        try:
            return _timestamp(m)
        except ValueError:
            return text
    return text


class _Builder:
    """Turns a node graph into plain values, collecting every duplicate key and stopping runaway aliases."""

    def __init__(self) -> None:
        self.visits = 0
        self.expanding: Node | None = None  # the outermost anchored node being expanded again through an alias
        self.seen: set[int] = set()
        self.problems: list[YamlError] = []

    def build(self, node: Node, depth: int = 0) -> Any:
        self.visits += 1
        if node.__class__ is ScalarNode:
            return self.scalar(node)
        if self.visits > MAX_NODES:
            self.too_many(node)
        if depth >= MAX_DEPTH:
            m = node.start_mark
            raise YamlError(m.line + 1, m.column + 1, f"nesting deeper than {MAX_DEPTH} levels")
        ident = id(node)
        if ident not in self.seen:
            self.seen.add(ident)
            return self.collection(node, depth)
        if self.expanding is not None:
            return self.collection(node, depth)
        self.expanding = node  # an alias: remember the outermost one, to name it if expansion runs away
        try:
            return self.collection(node, depth)
        finally:
            self.expanding = None

    def too_many(self, node: Node) -> None:
        if self.expanding is not None:
            m = self.expanding.start_mark
            raise YamlError(
                m.line + 1, m.column + 1, f"aliases of this anchor expand past {MAX_NODES} values (a YAML alias bomb?)"
            )
        m = node.start_mark
        raise YamlError(m.line + 1, m.column + 1, f"the document has more than {MAX_NODES} values")

    def collection(self, node: Node, depth: int) -> Any:
        if node.__class__ is SequenceNode:
            if node.tag != _SEQ:
                self.unsupported(node)
            return [self.child(n, depth + 1) for n in node.value]
        if node.tag != _MAP:
            self.unsupported(node)
        return self.mapping(node, depth)

    def child(self, node: Node, depth: int) -> Any:
        # The common case inline: a plain or quoted scalar.
        if node.__class__ is ScalarNode:
            self.visits += 1
            tag = node.tag
            if tag == _STR:
                if NUL in node.value:
                    self.nul(node)
                return node.value
            if tag == _PLAIN:
                return plain_scalar(node.value)
            return self.scalar(node)
        return self.build(node, depth)

    def scalar(self, node: Node) -> Any:
        tag = node.tag
        if tag == _PLAIN:
            return plain_scalar(node.value)
        # Only a double-quoted scalar can hold a NUL (an escape): YAML refuses the raw character.
        if NUL in node.value:
            self.nul(node)
        if tag == _STR:
            return node.value
        if tag in _TAGGED:
            return plain_scalar(node.value) if node.value else None
        self.unsupported(node)
        return node.value

    def nul(self, node: Node) -> None:
        m = node.start_mark
        self.problems.append(YamlError(m.line + 1, m.column + 1, NUL_MESSAGE))

    def mapping(self, node: Node, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges: list[Node] = []
        child = self.child
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode:
                m = key_node.start_mark
                self.problems.append(YamlError(m.line + 1, m.column + 1, "mapping keys must be plain values"))
                continue
            key = key_node.value
            if key_node.tag == _STR and NUL in key:
                self.nul(key_node)
            if key in out:
                first = next(k for k, _ in node.value if k.__class__ is ScalarNode and k.value == key)
                m = key_node.start_mark
                where = f"first at line {first.start_mark.line + 1}"
                self.problems.append(YamlError(m.line + 1, m.column + 1, f"duplicate key {excerpt(key)} ({where})"))
                continue
            if key == _MERGE_KEY and key_node.tag in (_PLAIN, "tag:yaml.org,2002:merge"):
                merges.append(value_node)
                continue
            out[key] = child(value_node, depth + 1)
        for merge in merges:
            self.merge_into(out, merge, depth)
        return out

    def merge_into(self, out: dict[str, Any], merge: Node, depth: int) -> None:
        sources = merge.value if merge.__class__ is SequenceNode else [merge]
        for src in sources:
            if src.__class__ is not MappingNode:
                m = src.start_mark
                self.problems.append(YamlError(m.line + 1, m.column + 1, "'<<' merges only mappings"))
                continue
            for k, v in self.build(src, depth + 1).items():
                out.setdefault(k, v)  # explicit keys and earlier sources win

    def unsupported(self, node: Node) -> None:
        m = node.start_mark
        self.problems.append(YamlError(m.line + 1, m.column + 1, f"unsupported YAML tag {node.tag!r}"))


def build(root: Node | None) -> tuple[Any, list[YamlError]]:
    """Values of a composed document plus the problems found (duplicate keys, unsupported tags)."""
    if root is None:
        return None, []
    b = _Builder()
    value = b.build(root)
    return value, b.problems


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is allowed) to text; YamlError at the first byte that is not UTF-8."""
    if len(data) > MAX_FILE_BYTES:
        raise YamlError(1, 1, f"file is {len(data)} bytes, over the {MAX_FILE_BYTES // 1024} KiB limit")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = e.start
        line_start = data.rfind(b"\n", 0, start) + 1
        line = data.count(b"\n", 0, start) + 1
        try:
            col = len(data[line_start:start].decode("utf-8")) + 1
        except UnicodeDecodeError:
            col = start - line_start + 1
        raise YamlError(line, col, f"not UTF-8 (byte 0x{data[start]:02x}); save the file as UTF-8") from None


class Source:
    """One configuration file: its display path, its text, and node positions composed on demand."""

    __slots__ = ("_root", "display", "kind", "path", "text")

    def __init__(self, path: Path, display: str, text: str, kind: str, root: Node | None = None) -> None:
        self.path = path
        self.display = display
        self.text = text
        self.kind = kind
        self._root = root

    def root(self) -> Node | None:
        if self._root is None and self.text.strip():
            try:
                self._root = compose(self.text)
            except YamlError:
                return None
        return self._root

    def release(self) -> None:
        """Drop the node graph (memory); it is composed again if a position is needed later."""
        self._root = None

    def node(self, loc: Sequence[str | int]) -> Node | None:
        """The node at exactly `loc` (following `<<` merges), or None when the path does not exist."""
        node = self.root()
        for step in loc:
            found = None if node is None else _child(node, step)
            if found is None:
                return None
            node = found[1]
        return node

    def find(self, loc: Sequence[str | int], key: bool = False) -> tuple[int, int, int]:
        """(line, col, matched) of the deepest node along `loc`; `key` points at the last mapping key instead."""
        node = self.root()
        if node is None:
            return 1, 1, 0
        matched = 0
        target: Node = node
        for i, step in enumerate(loc):
            found = _child(node, step)
            if found is None:
                break
            key_node, node = found
            matched += 1
            target = key_node if (key and i == len(loc) - 1 and key_node is not None) else node
        m = target.start_mark
        return m.line + 1, m.column + 1, matched


def _child(node: Node, step: str | int, merging: frozenset[int] = frozenset()) -> tuple[Node | None, Node] | None:
    """The (key node, value node) of `step` under `node`, following `<<` merges (a merge cycle is not followed)."""
    if node.__class__ is SequenceNode:
        if isinstance(step, int) and 0 <= step < len(node.value):
            return None, node.value[step]
        return None
    if node.__class__ is not MappingNode:
        return None
    want = str(step)
    merges = []
    for k, v in node.value:
        if k.__class__ is ScalarNode:
            if k.value == want:
                return k, v
            if k.value == _MERGE_KEY:
                merges.append(v)
    merging = merging | {id(node)}
    for merge in merges:
        for src in merge.value if merge.__class__ is SequenceNode else [merge]:
            if id(src) not in merging and (found := _child(src, step, merging)) is not None:
                return found
    return None
