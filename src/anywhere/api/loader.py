"""Reading cluster configurations from YAML, and writing them back.

Files are the ones EKS Anywhere users already have: several documents, extra ``---`` delimiters,
documents of other API groups mixed in (ignored). Reading is strict: an unknown field, a duplicate
key or a value of the wrong type is an error that names the object, the field, the file and the line,
and every such error of a file is reported at once.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import FieldError, SpecError
from anywhere.api.v1alpha1 import KINDS
from anywhere.api.v1alpha1._base import API_VERSION, GROUP, VERSION, Object
from anywhere.api.v1alpha1.cluster import Cluster

_MAX_FILE_BYTES = 16 * 1024 * 1024
# EKS Anywhere matches documents of its group by kind; a few of its own test files say ``v1``.
ACCEPTED_VERSIONS = (VERSION, "v1")


class YAMLFloat(float):
    """A float read from YAML that remembers its source text (``1.30`` is not ``1.3``)."""

    raw: str

    def __new__(cls, value: float, raw: str) -> YAMLFloat:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, keeping the text of floats."""


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> YAMLFloat:
    return YAMLFloat(loader.construct_yaml_float(node), node.value)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


Path_ = tuple[str | int, ...]


@dataclass
class SourceMap:
    """Line numbers of the fields of every object read from one file."""

    source: str
    lines: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[tuple[str, str, int]] = field(default_factory=list)  # (apiVersion, kind, line)
    warnings: list[str] = field(default_factory=list)

    def line_of(self, obj: str, field_path: str) -> int | None:
        """The line of ``field_path`` in ``obj``, or of its nearest parent that has one."""
        lines = self.lines.get(obj)
        if not lines:
            return None
        path = field_path
        while True:
            if path in lines:
                return lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return lines.get("")
            path = path[:cut]

    def locate(self, error: FieldError) -> str:
        """``file:line: error`` for the user."""
        line = self.line_of(error.obj, error.field)
        where = self.source if line is None else f"{self.source}:{line}"
        return f"{where}: {error}"


@dataclass
class LoadedConfig:
    config: ClusterConfig
    source_map: SourceMap


class LoadError(SpecError):
    """The file parsed as YAML but its objects do not fit their kinds; every problem is listed."""

    def __init__(self, errors: list[FieldError], source_map: SourceMap) -> None:
        self.errors = errors
        self.source_map = source_map
        super().__init__(f"{len(errors)} error(s) reading the configuration", source=source_map.source)

    def lines(self) -> list[str]:
        return [self.source_map.locate(e) for e in self.errors]


def format_path(path: Path_) -> str:
    """``("spec", "workers", 0, "count")`` -> ``spec.workers[0].count``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _walk(node: yaml.Node, path: Path_, lines: dict[str, int], duplicates: list[tuple[Path_, int]]) -> None:
    """Record the line of every field and list item; note duplicate keys (YAML would keep the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append((child, line))
            seen.add(key)
            lines.setdefault(format_path(child), line)
            _walk(value_node, child, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.setdefault(format_path(child), item.start_mark.line + 1)
            _walk(item, child, lines, duplicates)


@dataclass
class _Document:
    data: Any
    line: int
    lines: dict[str, int]
    duplicates: list[tuple[Path_, int]]


def _documents(text: str, source: str) -> Iterator[_Document]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[str, int] = {"": node.start_mark.line + 1}
            duplicates: list[tuple[Path_, int]] = []
            _walk(node, (), lines, duplicates)
            data = loader.construct_document(node)
            yield _Document(data, node.start_mark.line + 1, lines, duplicates)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(
            f"YAML syntax error: {problem}; fix the YAML and try again",
            source=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", source=source) from None
    finally:
        loader.dispose()


def read_text(path: str | Path) -> str:
    """The file's text, or a :class:`SpecError` saying why it cannot be a configuration."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("file not found; check the path", source=source) from None
    except IsADirectoryError:
        raise SpecError("is a directory; give a YAML file", source=source) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", source=source) from None
    if len(raw) > _MAX_FILE_BYTES:
        raise SpecError(f"file is larger than {_MAX_FILE_BYTES // (1024 * 1024)} MiB", source=source)
    if b"\x00" in raw:
        raise SpecError("binary file, not YAML; give the cluster configuration file", source=source)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8 YAML", source=source
        ) from None


def load_file(path: str | Path) -> LoadedConfig:
    return load_text(read_text(path), source=str(path))


def parse_objects(text: str, source: str = "<input>") -> tuple[list[Object], SourceMap]:
    """Every anywhere object of a YAML stream, strictly typed; other API groups are skipped."""
    if not text.strip():
        raise SpecError(
            "the file is empty; expected a Cluster and its datacenter and machine configs "
            "(see `anywhere generate clusterconfig`)",
            source=source,
        )
    source_map = SourceMap(source)
    objects: list[Object] = []
    errors: list[FieldError] = []
    for number, doc in enumerate(_documents(text, source), start=1):
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            raise SpecError(
                f"document {number} is a {type(doc.data).__name__}, not a Kubernetes object "
                "(a mapping with apiVersion, kind and metadata)",
                source=source,
                line=doc.line,
            )
        api_version, kind = doc.data.get("apiVersion"), doc.data.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise SpecError(
                f"document {number} has no apiVersion or kind; every document must be a Kubernetes object",
                source=source,
                line=doc.line,
            )
        group, _, version = api_version.rpartition("/")
        if group != GROUP:
            source_map.skipped.append((api_version, kind, doc.line))
            continue
        if version not in ACCEPTED_VERSIONS:
            raise SpecError(
                f"unsupported apiVersion {api_version!r} for kind {kind}; use {API_VERSION}",
                source=source,
                line=doc.lines.get("apiVersion", doc.line),
            )
        if version != VERSION:
            source_map.warnings.append(
                f"{source}:{doc.lines.get('apiVersion', doc.line)}: {kind} has apiVersion {api_version}, "
                f"read as {API_VERSION} (as EKS Anywhere does); write {API_VERSION}"
            )
            doc.data["apiVersion"] = API_VERSION
        kind_type = KINDS.get(kind)
        if kind_type is None:
            hint = difflib.get_close_matches(kind, list(KINDS), n=1)
            suggestion = (
                f"; did you mean {hint[0]}?" if hint else f"; known kinds: {', '.join(sorted(KINDS))}"
            )
            raise SpecError(
                f"unknown kind {kind!r} in {API_VERSION}{suggestion}",
                source=source,
                line=doc.lines.get("kind", doc.line),
            )
        name = _object_name(doc.data)
        ref = f"{kind}/{name}"
        if ref in source_map.lines:
            raise SpecError(
                f"{ref} is defined twice; each object may appear once", source=source, line=doc.line
            )
        source_map.lines[ref] = doc.lines
        for dup_path, dup_line in doc.duplicates:
            errors.append(
                FieldError(ref, format_path(dup_path), f"duplicate key (also set earlier, line {dup_line})")
            )
        try:
            objects.append(kind_type.model_validate(doc.data, by_name=False, by_alias=True))
        except ValidationError as exc:
            errors.extend(_field_errors(ref, kind_type, exc))
    if errors:
        raise LoadError(errors, source_map)
    return objects, source_map


def load_text(text: str, source: str = "<input>") -> LoadedConfig:
    """One cluster configuration: exactly one Cluster, all objects in one namespace."""
    objects, source_map = parse_objects(text, source)
    clusters = [obj for obj in objects if isinstance(obj, Cluster)]
    if not clusters:
        misplaced = [(v, line) for v, kind, line in source_map.skipped if kind == "Cluster"]
        hint = (
            f"; the Cluster at line {misplaced[0][1]} has apiVersion {misplaced[0][0]!r}, expected {API_VERSION}"
            if misplaced
            else " (see `anywhere generate clusterconfig`)"
        )
        raise SpecError(
            f"no Cluster of {API_VERSION} found; a configuration needs one Cluster object{hint}",
            source=source,
            line=misplaced[0][1] if misplaced else None,
        )
    if len(clusters) > 1:
        names = ", ".join(c.name for c in clusters)
        raise SpecError(
            f"{len(clusters)} Clusters ({names}) in one file; put each cluster in its own file",
            source=source,
            line=source_map.line_of(clusters[1].ref, ""),
        )
    cluster = clusters[0]
    others = [obj for obj in objects if obj is not cluster]
    mismatched = [
        FieldError(
            obj.ref,
            "metadata.namespace",
            f"namespace {obj.namespace!r} differs from the Cluster's {cluster.namespace!r}; "
            "all objects of a cluster must be in one namespace",
        )
        for obj in others
        if obj.namespace != cluster.namespace
    ]
    if mismatched:
        raise LoadError(mismatched, source_map)
    return LoadedConfig(ClusterConfig(cluster, others, source), source_map)


def dump_objects(objects: list[Object]) -> str:
    """YAML for these objects, one document each, that loads back equal."""
    return yaml.safe_dump_all(
        [obj.to_dict() for obj in objects], sort_keys=False, default_flow_style=False, explicit_start=False
    )


def dump_config(config: ClusterConfig) -> str:
    return dump_objects(config.all_objects())


def _object_name(data: dict[str, Any]) -> str:
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else ""


_TYPE_MESSAGES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_type": "must be a string (quote it)",
    "bool_type": "must be true or false",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "missing": "is required",
}


def _field_errors(ref: str, kind_type: type[BaseModel], exc: ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = _trim_union_tags(err["loc"])
        path = format_path(loc)
        if path in seen:  # a union reports once per member; the first says enough
            continue
        seen.add(path)
        if err["type"] == "extra_forbidden":
            errors.append(FieldError(ref, path, _unknown_field_message(kind_type, loc)))
            continue
        message = _TYPE_MESSAGES.get(err["type"], err["msg"][:1].lower() + err["msg"][1:])
        if err["type"] != "missing":
            message += f" (got {_short(err.get('input'))})"
        errors.append(FieldError(ref, path, message))
    return errors


def _trim_union_tags(loc: tuple[int | str, ...]) -> Path_:
    """Pydantic adds the member type (``int``, ``str``) to the location of union errors; drop it."""
    return tuple(part for part in loc if not (isinstance(part, str) and part in _UNION_TAGS))


_UNION_TAGS = {"int", "str", "float", "bool", "function-before[_version_text(), nullable[str]]"}


def _short(value: Any) -> str:
    text = value.raw if isinstance(value, YAMLFloat) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_field_message(kind_type: type[BaseModel], loc: Path_) -> str:
    key = str(loc[-1])
    known = _field_aliases_at(kind_type, loc[:-1])
    hint = difflib.get_close_matches(key.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
    if hint:
        match = next(k for k in known if k.lower() == hint[0])
        return f"unknown field {key!r}; did you mean {match!r}?"
    if known:
        return f"unknown field {key!r}; allowed here: {', '.join(sorted(known))}"
    return f"unknown field {key!r}"


def _field_aliases_at(model: type[BaseModel], path: Path_) -> list[str]:
    """The field names accepted at ``path`` inside ``model``, for "did you mean" hints."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        by_alias = {(info.alias or name): info for name, info in current.model_fields.items()}
        info = by_alias.get(part)
        if info is None:
            return []
        current = info.annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """``list[X] | None`` -> ``X``: the model type inside optional and list annotations."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = members[0] if len(members) == 1 else annotation
            if len(members) != 1:
                return annotation
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def object_from_dict(data: dict[str, Any]) -> tuple[Object | None, list[FieldError]]:
    """One anywhere object from decoded JSON (an API request body), as strictly as from a file."""
    kind = data.get("kind")
    kind_type = KINDS.get(kind) if isinstance(kind, str) else None
    ref = f"{kind}/{_object_name(data)}"
    if kind_type is None:
        return None, [FieldError(ref, "kind", f"unknown kind {kind!r} in {API_VERSION}")]
    try:
        return kind_type.model_validate(data, by_name=False, by_alias=True), []
    except ValidationError as exc:
        return None, _field_errors(ref, kind_type, exc)
