"""Reading the server's configuration files (encryption providers, audit policy): kube-apiserver's
YAML documents, checked field by field so an error names the file, the field and the fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigFileError(ValueError):
    """A configuration file cannot be used; the message names the file, the field and the fix."""


def load_document(path: Path, what: str, parse: Callable[[Any], T], error: type[ConfigFileError]) -> T:
    """``parse`` of the one YAML (or JSON) document in ``path``; ``error`` names ``path`` and ``what``."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(
            f"{path}: not valid YAML: {str(exc).splitlines()[0]}; fix the file and start again"
        ) from None
    try:
        return parse(document)
    except ConfigFileError as exc:
        raise error(f"{path}: {exc}") from None


def only_fields(obj: Mapping[str, Any], allowed: set[str], where: str, error: type[ConfigFileError]) -> None:
    """Refuse a field not in ``allowed`` (a misspelt field would otherwise be ignored silently)."""
    for name in obj:
        if name not in allowed:
            path = f"{where}.{name}" if where else str(name)
            raise error(f"{path}: unknown field; expected one of {', '.join(sorted(allowed))}")


def list_field(value: Any, where: str, error: type[ConfigFileError]) -> list[Any]:
    """A list field's items (``[]`` when absent)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise error(f"{where}: must be a list")
    return value


def top_level(
    document: Any, api_version: str, kind: str, allowed: set[str], error: type[ConfigFileError]
) -> dict[str, Any]:
    """The document as one object of ``api_version``/``kind`` with no field outside ``allowed``."""
    if not isinstance(document, dict):
        raise error(f"the file must hold one {kind} object (apiVersion {api_version})")
    only_fields(document, allowed, "", error)
    if document.get("apiVersion") != api_version or document.get("kind") != kind:
        raise error(
            f"apiVersion/kind must be {api_version}/{kind}, got "
            f"{document.get('apiVersion')!r}/{document.get('kind')!r}"
        )
    return document
