"""Authentication: who is calling, from a client certificate, a bearer token, or no one.

The chain is kube-apiserver's, in its order:

1. an x509 client certificate the TLS handshake verified against the cluster CA: the user is the
   subject's CN, the groups its O values (the admin kubeconfig uses one);
2. a bearer token: the admin token of the data dir (``system:masters``), a token from the static
   ``--token-auth-file`` (kube-apiserver's CSV format ``token,user,uid,"group1,group2"``), or a
   ServiceAccount token: a JWT signed with the cluster's service-account key (``sa.key`` in the
   data dir, so replicas sharing the folder accept each other's tokens), valid only while it has
   not expired and its ServiceAccount still exists with the uid it was issued for;
3. with ``--anonymous-auth`` only: ``system:anonymous`` in ``system:unauthenticated``.

A presented credential that does not verify is refused (401) even where anonymous requests are
allowed, as in Kubernetes: a client with a stale token learns so instead of silently becoming
anonymous. Every authenticated user is also in ``system:authenticated``. Tokens never reach a log
or an error message.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from anywhere.apiserver import pki
from anywhere.apiserver._http import User
from anywhere.apiserver._views import View
from anywhere.storage import Storage

log = logging.getLogger("anywhere.apiserver")

Obj = dict[str, Any]
AUTHENTICATED = "system:authenticated"
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
ADMIN = User(pki.ADMIN_USER, (pki.ADMIN_GROUP, AUTHENTICATED))

# kubeadm's default issuer; the API's own audience is the issuer, as kube-apiserver defaults it.
ISSUER = "https://kubernetes.default.svc.cluster.local"
SA_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_PREFIX = "/registry/core/serviceaccounts/"
# TokenRequest's limits (authentication/v1 validation) and kube-apiserver's default lifetime.
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
DEFAULT_EXPIRATION = 3600
# Clock skew tolerated on exp/nbf/iat between the replica that issued a token and the one checking it.
LEEWAY = 60


class TokenFileError(ValueError):
    """The static token file cannot be used; the message names the file, the line and the fix."""


def authenticated(user: User) -> User:
    """``user`` with ``system:authenticated`` among its groups."""
    if AUTHENTICATED in user.groups:
        return user
    return User(user.name, (*user.groups, AUTHENTICATED), user.uid)


def load_token_file(path: Path) -> dict[str, User]:
    """Token -> user from kube-apiserver's ``--token-auth-file`` CSV: ``token,user,uid[,groups]``,
    the groups one field (quoted when it holds commas). Blank lines are skipped; a line with
    fewer than three columns, an empty token or user, or a token given twice is an error that
    names the line (never the token)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"the token file {path} is not UTF-8 text") from None
    tokens: dict[str, User] = {}
    first_line: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text), skipinitialspace=True, strict=True)
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < 3:
                raise TokenFileError(
                    f"{path}, line {line}: found {len(row)} column(s); each line must be "
                    'token,user,uid or token,user,uid,"group1,group2"'
                )
            token, name, uid = row[0].strip(), row[1].strip(), row[2].strip()
            if not token:
                raise TokenFileError(f"{path}, line {line}: the token (first column) is empty")
            if not name:
                raise TokenFileError(f"{path}, line {line}: the user name (second column) is empty")
            if token in first_line:
                raise TokenFileError(
                    f"{path}, line {line}: the token of line {first_line[token]} is given again; "
                    "each token must name one user"
                )
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            first_line[token] = line
            tokens[token] = User(name, groups, uid)
    except csv.Error as exc:
        raise TokenFileError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    return tokens


# --------------------------------------------------------------------------------------------------
# ServiceAccount tokens


def key_id(public_key: Any) -> str:
    """The ``kid`` kube-apiserver gives a signing key: base64url(SHA-256(DER public key))."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


class ServiceAccounts:
    """Issues and verifies ServiceAccount tokens; follows which ServiceAccounts exist (and their uids)."""

    def __init__(self, storage: Storage, signing_key_pem: bytes, issuer: str = ISSUER) -> None:
        key = serialization.load_pem_private_key(signing_key_pem, password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            self._algorithm = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            self._algorithm = "ES256"
        else:
            raise ValueError("the service-account key must be RSA or EC P-256")
        self._key = key
        self._public = key.public_key()
        self._kid = key_id(self._public)
        self.issuer = issuer
        self.audiences = (issuer,)
        self._uids: dict[tuple[str, str], str] = {}
        self.view = View(storage, SERVICE_ACCOUNTS_PREFIX, self._apply)

    def _apply(self, key: str, obj: Obj | None) -> None:
        parts = key[len(SERVICE_ACCOUNTS_PREFIX) :].split("/")
        if len(parts) != 2:
            return
        if obj is None:
            self._uids.pop((parts[0], parts[1]), None)
        else:
            self._uids[(parts[0], parts[1])] = str((obj.get("metadata") or {}).get("uid") or "")

    async def start(self) -> None:
        await self.view.start()

    async def stop(self) -> None:
        await self.view.stop()

    def issue(
        self,
        namespace: str,
        name: str,
        uid: str,
        *,
        audiences: tuple[str, ...] = (),
        seconds: int = DEFAULT_EXPIRATION,
        now: dt.datetime | None = None,
    ) -> tuple[str, dt.datetime]:
        """A signed token for ServiceAccount ``namespace/name`` (uid ``uid``), and when it expires.

        The claims are those kube-apiserver puts in a bound token: iss, sub, aud, iat, nbf, exp,
        jti, and ``kubernetes.io`` with the namespace and the ServiceAccount's name and uid."""
        issued = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        expires = issued + dt.timedelta(seconds=seconds)
        claims = {
            "aud": list(audiences or self.audiences),
            "exp": int(expires.timestamp()),
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()),
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
            "sub": f"{SA_PREFIX}{namespace}:{name}",
        }
        token = jwt.encode(claims, self._key, algorithm=self._algorithm, headers={"kid": self._kid})
        return token, expires

    def verify(self, token: str) -> User | None:
        """The ServiceAccount a token stands for, or None: not a JWT of this issuer, a bad
        signature, expired, for another audience, or its ServiceAccount gone or recreated."""
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[self._algorithm],
                audience=list(self.audiences),
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            log.debug("bearer token refused: %s", type(exc).__name__)
            return None
        private = claims.get("kubernetes.io")
        account = private.get("serviceaccount") if isinstance(private, dict) else None
        if not isinstance(private, dict) or not isinstance(account, dict):
            return None
        namespace, name, uid = (
            str(private.get("namespace", "")),
            str(account.get("name", "")),
            str(account.get("uid", "")),
        )
        if not namespace or not name or claims.get("sub") != f"{SA_PREFIX}{namespace}:{name}":
            return None
        if self._uids.get((namespace, name)) != uid:
            log.debug("token refused: ServiceAccount %s/%s is gone or was recreated", namespace, name)
            return None
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED)
        return User(f"{SA_PREFIX}{namespace}:{name}", groups, uid)

    def uid(self, namespace: str, name: str) -> str | None:
        return self._uids.get((namespace, name))


# --------------------------------------------------------------------------------------------------
# The chain


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Authenticator:
    """Client certificate, then bearer token (static, then ServiceAccount), then anonymous."""

    def __init__(
        self,
        tokens: Mapping[str, User],
        service_accounts: ServiceAccounts | None = None,
        *,
        anonymous: bool = False,
    ) -> None:
        # Looked up by digest: a dict probe on a secret's hash leaks nothing useful about the secret.
        self._tokens = {_digest(token): authenticated(user) for token, user in tokens.items()}
        self._service_accounts = service_accounts
        self._anonymous = anonymous

    async def __call__(self, request: web.Request) -> User | None:
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        identity = pki.peer_identity(peer) if peer else None
        if identity is not None:
            name, groups = identity
            return authenticated(User(name, tuple(groups)))
        header = request.headers.get("Authorization", "")
        parts = header.split(" ")
        if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1]:
            return self.token_user(parts[1])
        return ANONYMOUS if self._anonymous else None

    def token_user(self, token: str) -> User | None:
        user = self._tokens.get(_digest(token))
        if user is not None:
            return user
        if self._service_accounts is not None and token.count(".") == 2:
            return self._service_accounts.verify(token)
        return None


# --------------------------------------------------------------------------------------------------
# Kubeconfigs for users


def user_kubeconfig(
    data_dir: Path,
    user: str,
    groups: tuple[str, ...] = (),
    *,
    days: int = 365,
    token: str | None = None,
) -> str:
    """A kubeconfig for ``user`` against the server serving ``data_dir``: a client certificate
    for CN=user, O=groups signed by the cluster CA (as ``kubeadm kubeconfig user`` makes), or,
    with ``token``, that bearer token instead. The server must have run once (it writes the
    admin kubeconfig, whose address this one copies)."""
    admin = data_dir / "admin.kubeconfig"
    try:
        config = yaml.safe_load(admin.read_text(encoding="utf-8"))
        server = config["clusters"][0]["cluster"]["server"]
        cluster = config["clusters"][0]["name"]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(
            f"cannot read the server address from {admin} ({exc}); run `anywhere serve --data-dir {data_dir}` first"
        ) from None
    keys = pki.load_or_create(data_dir)
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    if token is None:
        cert_pem, key_pem = pki.issue_client_certificate(keys.ca, user, groups, days)
    return pki.render_kubeconfig(
        server,
        keys.ca_cert_pem,
        user=user,
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
        token=token,
        cluster_name=cluster,
        context_name=f"{user}@{cluster}",
    )


__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "ISSUER",
    "Authenticator",
    "ServiceAccounts",
    "TokenFileError",
    "authenticated",
    "load_token_file",
    "user_kubeconfig",
]
