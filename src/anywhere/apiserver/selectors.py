"""Label and field selectors, parsed and matched the way kube-apiserver does.

Clients send ``labelSelector`` and ``fieldSelector`` as strings on list and watch; controllers and the
garbage collector hold ``metav1.LabelSelector`` objects (``matchLabels`` + ``matchExpressions``). Both
kinds of label selector end up as the same :class:`LabelSelector`, so matching, ``str()`` (used in the
``Selector`` column of ``kubectl get -o wide``) and error wording agree with apimachinery's
``labels`` and ``fields`` packages. Error messages reproduce Kubernetes' wording so that a user who
pastes one into a search engine finds the right explanation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from anywhere.apiserver._gofmt import go_quote
from anywhere.apiserver.errors import StatusError

__all__ = [
    "ALWAYS_SELECTABLE",
    "EVERYTHING",
    "NOTHING",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Operator",
    "Requirement",
    "field_value",
    "label_key_errors",
    "label_selector_from_dict",
    "label_selector_from_set",
    "label_value_errors",
    "parse_field_selector",
    "parse_label_selector",
]


# --------------------------------------------------------------------------------------------------
# Label key / value validation (apimachinery util/validation, v1.32 wording)
# --------------------------------------------------------------------------------------------------

_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_RE = re.compile(_NAME_FMT)
_NAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
_NAME_MAX = 63
_VALUE_FMT = f"({_NAME_FMT})?"
_VALUE_RE = re.compile(_VALUE_FMT)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_VALUE_MAX = 63
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MAX = 253


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Kubernetes' RegexError layout, including its double space before "or".
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def _byte_len(s: str) -> int:
    # Go measures strings in bytes; so must we, or multi-byte keys would pass a check Kubernetes fails.
    return len(s.encode("utf-8"))


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid label key (a Kubernetes "qualified name"); empty when it is."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            prefix_errs: list[str] = []
            if _byte_len(prefix) > _DNS1123_SUBDOMAIN_MAX:
                prefix_errs.append(_max_len_error(_DNS1123_SUBDOMAIN_MAX))
            if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
                prefix_errs.append(
                    _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
                )
            errs.extend("prefix part " + m for m in prefix_errs)
    else:
        return [
            "a qualified name "
            + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif _byte_len(name) > _NAME_MAX:
        errs.append("name part " + _max_len_error(_NAME_MAX))
    if not _NAME_RE.fullmatch(name):
        errs.append("name part " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value; empty when it is."""
    errs: list[str] = []
    if _byte_len(value) > _VALUE_MAX:
        errs.append(_max_len_error(_VALUE_MAX))
    if not _VALUE_RE.fullmatch(value):
        errs.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _invalid(path: str, value: str, detail: str) -> str:
    """``field.Invalid(...).Error()``: ``<path>: Invalid value: "<value>": <detail>``."""
    return f"{path}: Invalid value: {go_quote(value)}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message alone, several in brackets, duplicates dropped."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --------------------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------------------


class Operator(StrEnum):
    """A label requirement's operator (apimachinery ``selection.Operator`` values)."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


def _parse_int64(s: str) -> int | None:
    # strconv.ParseInt(s, 10, 64): optional sign, decimal digits only, within int64.
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    n = int(s)
    return n if -(2**63) <= n < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: ``key <operator> values``.

    Build with :meth:`new`, which validates like ``labels.NewRequirement``; the constructor itself
    trusts its input.
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def new(
        cls, key: str, operator: Operator, values: Iterable[str] | None = (), *, path: str | None = None
    ) -> Requirement:
        """Validate and build; raises ``ValueError`` carrying Kubernetes' aggregated message.

        ``values=None`` is an absent list (Go's nil slice), which only changes how an error prints.
        ``path`` prefixes the reported field (``key``, ``values[0]``); apimachinery reports none.
        """
        shown = None if values is None else tuple(values)
        vals = shown or ()
        errs: list[str] = []
        key_path = f"{path}.key" if path else "key"
        values_path = f"{path}.values" if path else "values"
        if key_errs := label_key_errors(key):
            errs.append(_invalid(key_path, key, "; ".join(key_errs)))
        if operator in (Operator.IN, Operator.NOT_IN):
            if not vals:
                errs.append(
                    f"{values_path}: Invalid value: {_go_slice(shown)}: for 'in', 'notin' operators, values set can't be empty"
                )
        elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
            if len(vals) != 1:
                errs.append(
                    f"{values_path}: Invalid value: {_go_slice(shown)}: exact-match compatibility requires one single value"
                )
        elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            if vals:
                errs.append(
                    f"{values_path}: Invalid value: {_go_slice(shown)}: values set must be empty for exists and does not exist"
                )
        else:  # GREATER_THAN, LESS_THAN
            if len(vals) != 1:
                errs.append(
                    f"{values_path}: Invalid value: {_go_slice(shown)}: for 'Gt', 'Lt' operators, exactly one value is required"
                )
            for i, v in enumerate(vals):
                if _parse_int64(v) is None:
                    errs.append(
                        _invalid(
                            f"{values_path}[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer"
                        )
                    )
        for i, v in enumerate(vals):
            if value_errs := label_value_errors(v):
                errs.append(_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(value_errs)))
        if errs:
            raise ValueError(_aggregate(errs))
        return cls(key, operator, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        # Gt / Lt: both sides must be integers, otherwise the requirement does not match.
        if self.key not in labels or len(self.values) != 1:
            return False
        have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        vals = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({vals})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{vals}"


def _go_slice(values: tuple[str, ...] | None) -> str:
    # How field.Invalid prints a []string bad value (%#v); None stands for Go's nil slice.
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of :class:`Requirement` s, sorted by key as Kubernetes keeps them.

    ``nothing`` marks the selector that matches no object at all: Kubernetes' meaning of a *nil*
    ``metav1.LabelSelector`` (whereas an empty one matches everything).
    """

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.nothing and not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        """The one value ``key`` must have for a match, if the selector pins it (lets callers use an index)."""
        for r in self.requirements:
            if r.key == key:
                if (
                    r.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
                    and len(r.values) == 1
                ):
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


def _sorted_selector(requirements: Iterable[Requirement]) -> LabelSelector:
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# The lexer and parser follow apimachinery's labels.Parse token by token, so that both what parses
# and the error for what does not match kube-apiserver.

_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_TOKENS = {")": "CLOSE", ",": "COMMA", "!": "NOT", "==": "DEQ", "=": "EQ", ">": "GT", "in": "IN", "<": "LT"}
_TOKENS |= {"!=": "NEQ", "notin": "NOTIN", "(": "OPEN"}


def _lex(text: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append(("EOS", ""))
            return items
        if text[pos] in _SPECIAL:
            # Longest run of special characters that still forms a known operator. Every single
            # special character is one, so the run is never empty.
            best = text[pos]
            end = pos + 1
            while end < n and text[end] in _SPECIAL:
                if text[pos : end + 1] in _TOKENS:
                    best = text[pos : end + 1]
                else:
                    break
                end += 1
            items.append((_TOKENS[best], best))
            pos += len(best)
            continue
        start = pos
        while pos < n and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        items.append((_TOKENS.get(word, "ID"), word))


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    # In "values" context the keywords in/notin are plain identifiers (``x in (in)``).
    def lookahead(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.items[self.pos]
        return ("ID" if values and tok in ("IN", "NOTIN") else tok), lit

    def consume(self, values: bool = True) -> tuple[str, str]:
        result = self.lookahead(values)
        self.pos += 1
        return result

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in ("ID", "NOT"):
                try:
                    requirements.append(self.requirement())
                except ValueError as e:
                    raise ValueError(f"unable to parse requirement: {e}") from None
                tok, lit = self.consume()
                if tok == "EOS":
                    return requirements
                if tok != "COMMA":
                    raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
                tok2, lit2 = self.lookahead()
                if tok2 not in ("ID", "NOT"):
                    raise ValueError(f"found '{lit2}', expected: identifier after ','")
            elif tok == "EOS":
                return requirements
            else:
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        operator: Operator | None = None
        tok, lit = self.consume()
        if tok == "NOT":
            operator = Operator.DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != "ID":
            raise ValueError(f"found '{lit}', expected: identifier")
        key = lit
        if key_errs := label_key_errors(key):
            raise ValueError(_invalid("<nil>", key, "; ".join(key_errs)))
        if self.lookahead()[0] in ("EOS", "COMMA") and operator is None:
            operator = Operator.EXISTS
        if operator is not None:
            return Requirement.new(key, operator)
        tok, lit = self.consume(values=False)
        ops = {
            "IN": Operator.IN,
            "NOTIN": Operator.NOT_IN,
            "EQ": Operator.EQUALS,
            "DEQ": Operator.DOUBLE_EQUALS,
            "NEQ": Operator.NOT_EQUALS,
            "GT": Operator.GREATER_THAN,
            "LT": Operator.LESS_THAN,
        }
        if tok not in ops:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        operator = ops[tok]
        values = self.value_set() if operator in (Operator.IN, Operator.NOT_IN) else self.exact_value()
        return Requirement.new(key, operator, sorted(values))

    def value_set(self) -> set[str]:
        tok, lit = self.consume()
        if tok != "OPEN":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in ("ID", "COMMA"):
            values = self.identifiers()
            if self.consume()[0] != "CLOSE":
                # Kubernetes reports the token that opened the list here, not the offending one.
                raise ValueError(f"found '{lit}', expected: ')'")
            return values
        if tok == "CLOSE":  # "()" means the empty string
            self.consume()
            return {""}
        raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == "ID":
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == "COMMA":
                    continue
                if tok2 == "CLOSE":
                    return values
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == "COMMA":  # empty entries stand for the empty string: "(,a)", "(a,)", "(a,,b)"
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 == "CLOSE":
                    values.add("")
                    return values
                if tok2 == "COMMA":
                    values.add("")
                continue
            raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in ("EOS", "COMMA"):
            return {""}
        tok, lit = self.consume()
        if tok == "ID":
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query string (``a=b,c in (x,y),!d``); an empty string matches all.

    Raises :class:`StatusError` 400 with kube-apiserver's message when the string is malformed or
    names an invalid key or value.
    """
    try:
        requirements = _LabelParser(text).parse()
    except ValueError as e:
        raise StatusError(400, str(e)) from None
    return _sorted_selector(requirements)


_DICT_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` object (``matchLabels`` + ``matchExpressions``).

    As in ``metav1.LabelSelectorAsSelector``: ``None`` matches nothing, ``{}`` matches everything.
    Raises :class:`StatusError` 400 for an unknown operator or an invalid key, value or value count.
    """
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    requirements: list[Requirement] = []
    try:
        for k, v in match_labels.items():
            requirements.append(Requirement.new(str(k), Operator.EQUALS, [str(v)]))
        for expr in expressions:
            op_name = expr.get("operator", "")
            if op_name not in _DICT_OPERATORS:
                raise ValueError(f"{go_quote(str(op_name))} is not a valid label selector operator")
            raw_values = expr.get("values")
            values = [str(v) for v in raw_values] if raw_values else None
            requirements.append(Requirement.new(str(expr.get("key", "")), _DICT_OPERATORS[op_name], values))
    except ValueError as e:
        raise StatusError(400, str(e)) from None
    return _sorted_selector(requirements)


def label_selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Selector matching exactly these labels (a Service's ``spec.selector``); empty or ``None`` matches all.

    Like ``labels.SelectorFromSet`` it does not validate: the map was validated when it was stored.
    """
    return _sorted_selector(Requirement(k, Operator.EQUALS, (v,)) for k, v in (labels or {}).items())


# --------------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------------


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The value at dotted ``path`` as a field selector sees it.

    Kubernetes exposes selectable fields as strings: missing or null is ``""``, booleans are
    ``"true"``/``"false"`` (``spec.hostNetwork``, ``spec.unschedulable``), numbers print plainly.
    """
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return ""
        cur = cur[part]
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, float) and cur.is_integer():
        return str(int(cur))
    return str(cur)


@dataclass(frozen=True)
class FieldRequirement:
    """``field=value`` (``==`` is the same) or ``field!=value``."""

    field: str
    value: str
    negated: bool = False

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negated else '='}{self.value}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of :class:`FieldRequirement` s, with how to read each field from an object."""

    requirements: tuple[FieldRequirement, ...] = ()
    getters: Mapping[str, Callable[[Mapping[str, Any]], str]] = field(default_factory=dict, compare=False)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for r in self.requirements:
            getter = self.getters.get(r.field)
            actual = getter(obj) if getter else field_value(obj, r.field)
            if (actual == r.value) == r.negated:
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.requirements

    def requires_exact_match(self, name: str) -> str | None:
        """The value ``name`` must equal, if some term pins it (``metadata.name=x`` → ``"x"``)."""
        for r in self.requirements:
            if r.field == name and not r.negated:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


ALWAYS_SELECTABLE = ("metadata.name", "metadata.namespace")


def _split_terms(text: str) -> list[str]:
    # Commas split terms unless backslash-escaped; the escape stays for _unescape to handle.
    terms: list[str] = []
    start, escaped = 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first operator occurrence wins; "!=" and "==" are tried before "=" at each position.
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise StatusError(400, f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise StatusError(400, f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise StatusError(400, "invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(
    text: str,
    supported: Collection[str] | Mapping[str, Callable[[Mapping[str, Any]], str]] = (),
    *,
    generic: bool = False,
) -> FieldSelector:
    """Parse a ``fieldSelector`` query string (``a=b``, ``a==b``, ``a!=b``, comma = AND).

    ``supported`` lists the resource's selectable fields beyond ``metadata.name`` and
    ``metadata.namespace`` (always selectable). Give a mapping to say how to read a field whose label
    is not its path (events' ``source`` is ``source.component``); plain names are read with
    :func:`field_value`. Values may escape ``\\``, ``,`` and ``=`` with a backslash, as ``kubectl``
    does.

    An unsupported field is a 400 worded ``field label not supported: X``, as for the kinds whose
    field labels Kubernetes registers (pods, nodes, events, secrets, ...). Pass ``generic=True`` for
    resources served with apimachinery's default conversion (custom resources, config maps), whose
    error Kubernetes words ``"X" is not a known field selector: only "metadata.name", "metadata.namespace"``.
    """
    getters: dict[str, Callable[[Mapping[str, Any]], str]] = {}
    if isinstance(supported, Mapping):
        getters.update(supported)
    allowed = set(ALWAYS_SELECTABLE) | set(supported)

    parts = sorted(_split_terms(text)) if text else []
    requirements: list[FieldRequirement] = []
    for part in parts:
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise StatusError(400, f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        requirements.append(FieldRequirement(lhs, _unescape(rhs), negated=op == "!="))
    for r in requirements:
        if r.field not in allowed:
            if generic:
                message = (
                    f'"{r.field}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                )
            else:
                message = f"field label not supported: {r.field}"
            raise StatusError(400, message)
    return FieldSelector(tuple(requirements), getters)
