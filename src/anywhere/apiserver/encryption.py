"""Encryption at rest: kube-apiserver's ``EncryptionConfiguration``, applied as a storage wrapper.

``anywhere serve --encryption-provider-config FILE`` reads the same file kube-apiserver does
(``apiserver.config.k8s.io/v1``): for each group of resources an ordered list of providers. The first
provider encrypts every new write; every listed provider may decrypt (that is how keys rotate: put
the new key first, keep the old one after it, rewrite the objects, then drop the old key). Stored
values carry Kubernetes' prefix ``k8s:enc:<provider>:v1:<key name>:`` so a store written by one is
recognisable by the other's tools, and ``identity`` (no prefix) reads plain values.

Providers: ``aescbc`` (AES-CBC, PKCS#7 padding, random IV), ``aesgcm`` (AES-GCM, random nonce, the
storage key as authenticated data, so a value copied under another key does not decrypt) and
``identity``. ``secretbox`` needs XSalsa20-Poly1305, which the ``cryptography`` library lacks, and
``kms`` needs a KMS plugin; both are refused at start with a message saying so.

Why a wrapper of :class:`~anywhere.storage.Storage` here, not inside a backend: it works the same over
SQLite and etcd, it needs the API's key layout (``/registry/<group|core>/<resource>/...``) to know
which values a rule covers, and its failure is an API answer (500 ``InternalError`` naming the key
and the reason, never key material), which is the API layer's vocabulary.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from anywhere.apiserver._configfile import ConfigFileError, list_field, load_document, only_fields, top_level
from anywhere.apiserver.errors import StatusError
from anywhere.storage import Event, ListResult, Record, Storage, Watch

log = logging.getLogger("anywhere.apiserver.encryption")

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED = b"k8s:enc:"
AES_KEY_SIZES = (16, 24, 32)
ROOT = "/registry/"


class EncryptionConfigError(ConfigFileError):
    """The configuration file cannot be used; the message names the file, the field and the fix."""


class _Unreadable(Exception):
    """A stored value no configured provider can turn back into plain data (the reason, no secrets)."""


# ---- providers -------------------------------------------------------------------------------


class _Provider:
    name = ""

    def seal(self, plain: bytes, context: bytes) -> bytes:
        raise NotImplementedError

    def open(self, data: bytes, context: bytes) -> bytes | None:
        """The plain value; ``None`` when the value is not this provider's; :class:`_Unreadable` when
        it is but cannot be decrypted."""
        raise NotImplementedError


class _Identity(_Provider):
    name = "identity"

    def seal(self, plain: bytes, context: bytes) -> bytes:
        return plain

    def open(self, data: bytes, context: bytes) -> bytes | None:
        # Kubernetes reserves the prefix for encrypted data: plain JSON never starts with it.
        return None if data.startswith(ENCRYPTED) else data


class _AES(_Provider):
    """``aescbc`` or ``aesgcm`` with named keys; the first key seals, any key named in a value opens it."""

    def __init__(self, name: str, keys: list[tuple[str, bytes]]) -> None:
        self.name = name
        self.prefix = b"k8s:enc:" + name.encode() + b":v1:"
        self.keys = [(key_name.encode() + b":", secret) for key_name, secret in keys]

    def seal(self, plain: bytes, context: bytes) -> bytes:
        label, secret = self.keys[0]
        return (
            self.prefix + label + (_cbc_seal if self.name == "aescbc" else _gcm_seal)(secret, plain, context)
        )

    def open(self, data: bytes, context: bytes) -> bytes | None:
        if not data.startswith(self.prefix):
            return None
        rest = data[len(self.prefix) :]
        for label, secret in self.keys:
            if rest.startswith(label):
                payload = rest[len(label) :]
                try:
                    if self.name == "aescbc":
                        return _cbc_open(secret, payload)
                    return _gcm_open(secret, payload, context)
                except (ValueError, InvalidTag):
                    key_name = label[:-1].decode(errors="replace")
                    raise _Unreadable(
                        f'{self.name} key "{key_name}" cannot decrypt the value (it was written with '
                        "another secret under that name, or the value is damaged)"
                    ) from None
        named = _label(rest)
        raise _Unreadable(
            f'no matching prefix found: the value was written with {self.name} key "{named}", which the '
            "encryption configuration no longer lists; add that key back (after the current one) to read it"
        )


def _label(data: bytes) -> str:
    """The name before the next ':' of a stored value, for a message (a damaged value names none)."""
    name = data.split(b":", 1)[0][:64].decode(errors="replace")
    return name if name.isprintable() and b":" in data[:65] else "?"


def _cbc_seal(secret: bytes, plain: bytes, _context: bytes) -> bytes:
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def _cbc_open(secret: bytes, payload: bytes) -> bytes:
    if len(payload) < 32 or len(payload) % 16:
        raise ValueError("not a whole number of AES blocks after the IV")
    decryptor = Cipher(algorithms.AES(secret), modes.CBC(payload[:16])).decryptor()
    padded = decryptor.update(payload[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()  # ValueError on bad padding (a wrong key)


def _gcm_seal(secret: bytes, plain: bytes, context: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(secret).encrypt(nonce, plain, context)


def _gcm_open(secret: bytes, payload: bytes, context: bytes) -> bytes:
    if len(payload) < 12 + 16:
        raise ValueError("too short for a nonce and a tag")
    return AESGCM(secret).decrypt(payload[:12], payload[12:], context)


class _Chain:
    """The providers of one resource rule, in order: the first seals, the first that recognises opens."""

    def __init__(self, providers: list[_Provider]) -> None:
        self.providers = providers

    def seal(self, plain: bytes, key: str) -> bytes:
        return self.providers[0].seal(plain, key.encode())

    def open(self, data: bytes, key: str) -> bytes:
        for provider in self.providers:
            plain = provider.open(data, key.encode())
            if plain is not None:
                return plain
        if data.startswith(ENCRYPTED):
            kind = _label(data[len(ENCRYPTED) :])
            if any(p.name == "identity" for p in self.providers):
                reason = "identity transformer tried to read encrypted data"
            else:
                reason = "no matching prefix found"
            raise _Unreadable(
                f"{reason}: the value is encrypted with {kind}, which the encryption configuration does "
                "not list for this resource"
            )
        raise _Unreadable(
            "no matching prefix found: the value is stored unencrypted and the encryption configuration "
            "has no identity provider for this resource; add `- identity: {}` as the last provider"
        )


# ---- the configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptionConfig:
    """A validated ``EncryptionConfiguration``: which providers apply to which resources."""

    rules: tuple[tuple[frozenset[str], _Chain], ...]

    def chain_for(self, group: str, resource: str) -> _Chain | None:
        """The providers of the first rule naming ``resource.group`` (or a wildcard covering it)."""
        names = {f"{resource}.{group}" if group else resource, f"*.{group}", "*.*"}
        for patterns, chain in self.rules:
            if patterns & names:
                return chain
        return None

    @property
    def providers(self) -> list[str]:
        """Provider names per rule, for the startup log line (no key material)."""
        return [",".join(p.name for p in chain.providers) for _, chain in self.rules]


def load_config(path: Path) -> EncryptionConfig:
    """Read and validate the file; :class:`EncryptionConfigError` names what is wrong and where."""
    return load_document(path, "encryption provider configuration", parse_config, EncryptionConfigError)


def parse_config(document: Any) -> EncryptionConfig:
    """Validate an ``EncryptionConfiguration`` document (as loaded from YAML or JSON)."""
    document = top_level(
        document, API_VERSION, KIND, {"apiVersion", "kind", "resources"}, EncryptionConfigError
    )
    entries = list_field(document.get("resources"), "resources", EncryptionConfigError)
    if not entries:
        raise EncryptionConfigError("resources: at least one entry is required")
    rules: list[tuple[frozenset[str], _Chain]] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(entries):
        where = f"resources[{i}]"
        if not isinstance(entry, dict):
            raise EncryptionConfigError(f"{where}: must be an object with resources and providers")
        only_fields(entry, {"resources", "providers"}, where, EncryptionConfigError)
        names = list_field(entry.get("resources"), f"{where}.resources", EncryptionConfigError)
        if not names:
            raise EncryptionConfigError(f"{where}.resources: at least one resource is required")
        patterns: set[str] = set()
        for j, name in enumerate(names):
            field = f"{where}.resources[{j}]"
            pattern = _resource_pattern(name, field)
            masked = _masked_by(pattern, seen)
            if masked is not None:
                raise EncryptionConfigError(
                    f"{field}: {name!r} is already covered by {masked}; each resource may be named once, "
                    "and a wildcard must come after the resources it covers"
                )
            seen[pattern] = field
            patterns.add(pattern)
        providers = list_field(entry.get("providers"), f"{where}.providers", EncryptionConfigError)
        if not providers:
            raise EncryptionConfigError(f"{where}.providers: at least one provider is required")
        chain = [_provider(p, f"{where}.providers[{k}]") for k, p in enumerate(providers)]
        rules.append((frozenset(patterns), _Chain(chain)))
    return EncryptionConfig(tuple(rules))


def _resource_pattern(name: Any, field: str) -> str:
    """``secrets`` (core), ``deployments.apps``, ``*.apps``, ``*.`` (all of core) or ``*.*``."""
    if not isinstance(name, str) or not name or name != name.strip() or name != name.lower():
        raise EncryptionConfigError(
            f"{field}: {name!r} is not a resource; write it lower case as resource or resource.group"
        )
    if name == "*":
        raise EncryptionConfigError(f'{field}: "*" is not a resource; use "*.*" for every resource')
    resource, _, group = name.partition(".")
    if name != "*.*" and ("*" in group or ("*" in resource and resource != "*")):
        raise EncryptionConfigError(
            f'{field}: {name!r}: a wildcard may only stand for the whole resource ("*.group") or be "*.*"'
        )
    return name


def _masked_by(pattern: str, seen: Mapping[str, str]) -> str | None:
    """The earlier entry that already decides for ``pattern`` (a resource named there, or a wildcard)."""
    group = pattern.partition(".")[2]
    for covering in (pattern, f"*.{group}", "*.*"):
        if covering in seen:
            return f"{seen[covering]} ({covering!r})"
    return None


def _provider(entry: Any, where: str) -> _Provider:
    kinds = {"aescbc", "aesgcm", "secretbox", "identity", "kms"}
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in kinds:
        raise EncryptionConfigError(
            f"{where}: each provider must name exactly one of aescbc, aesgcm, identity (secretbox and kms "
            "are not supported here)"
        )
    kind, body = next(iter(entry.items()))
    if kind == "identity":
        if body not in (None, {}):
            raise EncryptionConfigError(f"{where}.identity: takes no settings; write `identity: {{}}`")
        return _Identity()
    if kind == "secretbox":
        raise EncryptionConfigError(
            f"{where}: secretbox is not supported by this server (XSalsa20-Poly1305 is not in the "
            "cryptography library); use aescbc or aesgcm"
        )
    if kind == "kms":
        raise EncryptionConfigError(
            f"{where}: kms providers are not supported by this server (they need a KMS plugin); "
            "use aescbc or aesgcm"
        )
    if not isinstance(body, dict):
        raise EncryptionConfigError(f"{where}.{kind}: must be an object with keys")
    only_fields(body, {"keys"}, f"{where}.{kind}", EncryptionConfigError)
    keys = list_field(body.get("keys"), f"{where}.{kind}.keys", EncryptionConfigError)
    if not keys:
        raise EncryptionConfigError(f"{where}.{kind}.keys: at least one key is required")
    parsed: list[tuple[str, bytes]] = []
    for n, key in enumerate(keys):
        field = f"{where}.{kind}.keys[{n}]"
        if not isinstance(key, dict):
            raise EncryptionConfigError(f"{field}: must be an object with name and secret")
        only_fields(key, {"name", "secret"}, field, EncryptionConfigError)
        name, secret = key.get("name"), key.get("secret")
        if not isinstance(name, str) or not name:
            raise EncryptionConfigError(f"{field}.name: required")
        if any(name == other for other, _ in parsed):
            raise EncryptionConfigError(f"{field}.name: {name!r} is used twice in this provider")
        if not isinstance(secret, str) or not secret:
            raise EncryptionConfigError(f"{field}.secret: required (a base64-encoded random key)")
        parsed.append((name, _secret(secret, f"{field}.secret")))
    return _AES(kind, parsed)


def _secret(text: str, field: str) -> bytes:
    """The key bytes; errors say the length found, never the value."""
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionConfigError(f"{field}: not valid base64") from None
    if len(secret) not in AES_KEY_SIZES:
        raise EncryptionConfigError(
            f"{field}: the key is {len(secret)} bytes; AES needs 16, 24 or 32 (32 recommended: "
            "`head -c 32 /dev/urandom | base64`)"
        )
    return secret


# ---- the storage wrapper ---------------------------------------------------------------------


class DecryptionError(StatusError):
    """500 ``InternalError``, as kube-apiserver answers when a stored value cannot be transformed."""

    def __init__(self, key: str, reason: str) -> None:
        message = f'unable to transform key "{key}": {reason}'
        super().__init__(
            500, f"Internal error occurred: {message}", reason="InternalError", causes=[{"message": message}]
        )


def _group_resource(key: str) -> tuple[str, str] | None:
    """``/registry/<group|core>/<resource>/...`` -> (group, resource); ``None`` above a resource."""
    if not key.startswith(ROOT):
        return None
    parts = key[len(ROOT) :].split("/", 2)
    if len(parts) < 3:
        return None
    group, resource = parts[0], parts[1]
    return ("" if group == "core" else group), resource


def _spans_resources(prefix: str) -> bool:
    """A prefix above any one resource (``/registry/``): a sweep of the whole store, not an API read."""
    return _group_resource(prefix + "x") is None


class EncryptedStorage(Storage):
    """Any :class:`Storage`, with the values of configured resources encrypted on the way in and
    decrypted on the way out (get, list, write results, watch events and their previous values).

    A value that cannot be decrypted fails the request that names its resource (500). A sweep over
    the whole store (the built-in garbage collector lists and watches ``/registry/``) skips it with
    a log line instead, so one unreadable object does not stop collection of all the others.
    """

    def __init__(self, inner: Storage, config: EncryptionConfig) -> None:
        self.inner = inner
        self.config = config
        self._chains: dict[tuple[str, str], _Chain | None] = {}

    def _chain(self, key: str) -> _Chain | None:
        located = _group_resource(key)
        if located is None:
            return None
        try:
            return self._chains[located]
        except KeyError:
            chain = self._chains[located] = self.config.chain_for(*located)
            return chain

    def _seal(self, key: str, value: bytes) -> bytes:
        chain = self._chain(key)
        return value if chain is None else chain.seal(value, key)

    def _open(self, key: str, value: bytes) -> bytes:
        chain = self._chain(key)
        if chain is None:
            return value
        try:
            return chain.open(value, key)
        except _Unreadable as exc:
            raise DecryptionError(key, str(exc)) from None

    def _plain(self, record: Record, value: bytes) -> Record:
        return Record(record.key, value, record.create_rv, record.mod_rv)

    async def get(self, key: str) -> Record | None:
        record = await self.inner.get(key)
        return None if record is None else self._plain(record, self._open(key, record.value))

    async def list(self, prefix: str, *, limit: int = 0, start_after: str = "") -> ListResult:
        listed = await self.inner.list(prefix, limit=limit, start_after=start_after)
        sweep = _spans_resources(prefix)
        records: list[Record] = []
        for record in listed.records:
            try:
                records.append(self._plain(record, self._open(record.key, record.value)))
            except DecryptionError as exc:
                if not sweep:
                    raise
                log.warning("skipping %s", exc.message)
        return ListResult(records, listed.revision, listed.more)

    async def create(self, key: str, value: bytes) -> Record:
        return self._plain(await self.inner.create(key, self._seal(key, value)), value)

    async def update(self, key: str, value: bytes, *, expected_rv: int | None = None) -> Record:
        record = await self.inner.update(key, self._seal(key, value), expected_rv=expected_rv)
        return self._plain(record, value)

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Record:
        record = await self.inner.delete(key, expected_rv=expected_rv)
        return self._plain(record, self._open(key, record.value))

    async def watch(self, prefix: str, from_rv: int) -> Watch:
        sweep = _spans_resources(prefix)
        return _DecryptingWatch(await self.inner.watch(prefix, from_rv), self, sweep)

    async def revision(self) -> int:
        return await self.inner.revision()

    async def compact(self, keep: int) -> int:
        return await self.inner.compact(keep)

    async def close(self) -> None:
        await self.inner.close()


class _DecryptingWatch(Watch):
    """Events with plain values. An event that cannot be decrypted ends a watch of its resource (the
    client re-lists and gets the 500 there); a sweep skips it."""

    def __init__(self, inner: Watch, storage: EncryptedStorage, sweep: bool) -> None:
        self._inner = inner
        self._storage = storage
        self._sweep = sweep
        self._reason: str | None = None

    async def next(self, timeout: float | None = None) -> Event | None:
        while True:
            if self._reason is not None:
                raise StopAsyncIteration
            event = await self._inner.next(timeout)
            if event is None:
                return None
            try:
                value = self._storage._open(event.key, event.value)
                prev = None if event.prev is None else self._storage._open(event.key, event.prev)
            except DecryptionError as exc:
                if self._sweep:
                    log.warning("skipping an event: %s", exc.message)
                    continue
                self._reason = exc.message
                self._inner.close()
                raise StopAsyncIteration from None
            return Event(event.type, event.key, value, event.rv, prev)

    def close(self) -> None:
        self._inner.close()

    @property
    def closed_reason(self) -> str | None:
        return self._reason or self._inner.closed_reason


def wrap(storage: Storage, config: EncryptionConfig | None) -> Storage:
    """``storage`` with ``config`` applied (unchanged without one)."""
    return storage if config is None else EncryptedStorage(storage, config)
