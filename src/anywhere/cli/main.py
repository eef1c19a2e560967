"""The ``anywhere`` command, mirroring ``eksctl anywhere``.

Every failure ends with a one-line reason on stderr (or one line per validation error) and a
non-zero exit; a traceback is shown only with ``ANYWHERE_DEBUG=1``.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from anywhere import __version__
from anywhere.api import (
    ClusterConfig,
    FieldError,
    LoadedConfig,
    LoadError,
    SpecError,
    check_config,
    create_checks,
    dump_config,
    load_file,
    validate_update,
)
from anywhere.api.crds import all_crds
from anywhere.api.generate import DEFAULT_KUBERNETES_VERSION, generate_config
from anywhere.api.infra import PROVIDERS, rules_for_datacenter
from anywhere.cli.cluster import register as register_lifecycle
from anywhere.cli.tinkerbell import register as register_tinkerbell

if TYPE_CHECKING:
    from anywhere.apiserver.serve import ServeOptions

app = typer.Typer(
    name="anywhere",
    help="Kubernetes cluster lifecycle management for infrastructure you own.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
generate_app = typer.Typer(help="Generate cluster configurations and CRDs.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")
register_lifecycle(app)  # create, upgrade, delete, get: anywhere.cli.cluster

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True)
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the version of anywhere."""
    out.print(f"anywhere {__version__}")


def _load(path: Path) -> LoadedConfig:
    try:
        loaded = load_file(path)
        for warning in loaded.source_map.warnings:
            err.print(f"warning: {warning}", markup=False)
        return loaded
    except LoadError as exc:
        for line in exc.lines():
            err.print(line, markup=False)
        fail(f"{path}: {len(exc.errors)} error(s); fix them and run again")
    except SpecError as exc:
        fail(str(exc))


def _report(loaded: LoadedConfig, errors: list[FieldError], what: str) -> None:
    if not errors:
        return
    for error in errors:
        err.print(loaded.source_map.locate(error), markup=False)
    fail(f"{loaded.source_map.source}: {len(errors)} {what} error(s); fix them and run again")


def _summary(config: ClusterConfig) -> str:
    cluster = config.cluster
    spec = cluster.spec
    datacenter = config.datacenter
    rules = rules_for_datacenter(datacenter.kind) if datacenter is not None else None
    control_plane = spec.control_plane_configuration.count if spec.control_plane_configuration else 0
    groups = cluster.worker_groups
    workers = sum(g.count or 0 for g in groups)
    role = "management" if cluster.is_self_managed else "workload"
    return (
        f"Cluster {cluster.name} is valid: {role} cluster on {rules.name if rules else 'unknown'}, "
        f"Kubernetes {spec.kubernetes_version}, {control_plane} control plane, "
        f"{len(groups)} worker group(s) with {workers} node(s)"
    )


@app.command()
def validate(
    file: Annotated[Path, typer.Option("--file", "-f", help="The cluster configuration to check.")],
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from", help="The configuration the cluster has now: also check that the change is allowed."
        ),
    ] = None,
) -> None:
    """Validate a cluster configuration: every error at once, each with its file, line and field."""
    loaded = _load(file)
    _report(loaded, check_config(loaded.config), "validation")
    if from_ is not None:
        old = _load(from_)
        check_config(old.config)
        _report(loaded, validate_update(old.config, loaded.config), "update")
    for warning in create_checks(loaded.config):
        err.print(f"warning: {loaded.source_map.locate(warning)} (refused by `create cluster`)", markup=False)
    out.print(f"{file}: {_summary(loaded.config)}", markup=False)


@generate_app.command("clusterconfig")
def generate_clusterconfig(
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
    provider: Annotated[
        str, typer.Option("--provider", "-p", help=f"One of: {', '.join(PROVIDERS)}.")
    ] = "sim",
    kubernetes_version: Annotated[
        str, typer.Option("--kubernetes-version", help="Kubernetes version (major.minor).")
    ] = DEFAULT_KUBERNETES_VERSION,
) -> None:
    """Print a complete cluster configuration for a provider, ready to edit and validate."""
    if provider not in PROVIDERS:
        fail(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}", code=2)
    config = generate_config(name, provider, kubernetes_version)
    errors = check_config(copy.deepcopy(config))
    if errors:
        fail("; ".join(str(e) for e in errors))
    sys.stdout.write(dump_config(config))


@generate_app.command("crds")
def generate_crds() -> None:
    """Print the CustomResourceDefinitions of every kind, for a Kubernetes API server."""

    sys.stdout.write(yaml.safe_dump_all(all_crds(), sort_keys=False))


@app.command()
def serve(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where state, certificates and keys live.")],
    port: Annotated[int, typer.Option("--port", help="HTTPS port (0 picks a free one).")] = 6443,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    storage: Annotated[str, typer.Option("--storage", help="Storage backend: sqlite or etcd.")] = "sqlite",
    san: Annotated[
        list[str] | None, typer.Option("--san", help="Extra name or IP for the serving certificate.")
    ] = None,
    reuse_port: Annotated[
        bool,
        typer.Option(
            "--reuse-port", help="With --port 0: the port this data dir was last served on, if any."
        ),
    ] = False,
    controllers: Annotated[
        bool, typer.Option("--controllers", help="Also run the management plane's controllers.")
    ] = False,
    self_cluster: Annotated[
        str | None,
        typer.Option("--self-cluster", help="The self-managed cluster whose own API this server is."),
    ] = None,
    encryption_provider_config: Annotated[
        Path | None,
        typer.Option(
            "--encryption-provider-config",
            help="An EncryptionConfiguration file: which resources to encrypt at rest, with which keys.",
        ),
    ] = None,
    audit_policy_file: Annotated[
        Path | None, typer.Option("--audit-policy-file", help="An audit.k8s.io/v1 Policy file.")
    ] = None,
    audit_log_path: Annotated[
        str | None,
        typer.Option("--audit-log-path", help="Where audit events go, as JSON lines (- for stdout)."),
    ] = None,
    token_auth_file: Annotated[
        Path | None,
        typer.Option(
            "--token-auth-file", help='Bearer tokens, one per line: token,user,uid[,"group1,group2"].'
        ),
    ] = None,
    anonymous_auth: Annotated[
        bool,
        typer.Option(
            "--anonymous-auth", help="Serve requests without credentials as system:anonymous (else 401)."
        ),
    ] = False,
    etcd_endpoints: Annotated[
        str | None,
        typer.Option("--etcd-endpoints", help="With --storage etcd: the members' URLs, comma-separated."),
    ] = None,
    etcd_prefix: Annotated[
        str, typer.Option("--etcd-prefix", help="With --storage etcd: the prefix of every key.")
    ] = "/anywhere/",
    etcd_cafile: Annotated[
        Path | None, typer.Option("--etcd-cafile", help="The CA that signed the etcd members' certificates.")
    ] = None,
    etcd_certfile: Annotated[
        Path | None, typer.Option("--etcd-certfile", help="Client certificate presented to etcd.")
    ] = None,
    etcd_keyfile: Annotated[
        Path | None, typer.Option("--etcd-keyfile", help="The key of --etcd-certfile.")
    ] = None,
    etcd_auto_sync_interval: Annotated[
        float,
        typer.Option(
            "--etcd-auto-sync-interval",
            help="With --storage etcd: follow the cluster's membership every this many seconds "
            "(0: use only --etcd-endpoints), so the server outlives the member it was started with.",
        ),
    ] = 0.0,
) -> None:
    """Run the Kubernetes-compatible API server until SIGTERM; writes DATA_DIR/admin.kubeconfig.

    With --controllers this is a whole management plane: the API, the lifecycle controllers
    (leader-elected), and the sim provider's per-cluster API endpoints."""
    from anywhere.apiserver.serve import ServeOptions, main

    if not 0 <= port <= 65535:
        fail(f"--port {port} is not a TCP port (0 to 65535)", code=2)
    if self_cluster and not controllers:
        fail("--self-cluster needs --controllers", code=2)
    options = ServeOptions(data_dir, port, host, storage, tuple(san or ()), reuse_port=reuse_port)
    _etcd_options(
        options,
        etcd_endpoints,
        etcd_prefix,
        etcd_cafile,
        etcd_certfile,
        etcd_keyfile,
        etcd_auto_sync_interval,
    )
    _security_options(options, encryption_provider_config, audit_policy_file, audit_log_path)
    _auth_options(options, token_auth_file, anonymous_auth)
    if controllers:
        from anywhere.controllers import plane

        options.companion = lambda kubeconfig: plane.run(kubeconfig, data_dir, self_cluster=self_cluster)
    raise typer.Exit(main(options))


@app.command()
def controllers(
    kubeconfig: Annotated[
        Path, typer.Option("--kubeconfig", help="An admin kubeconfig of the API the controllers manage.")
    ],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where providers keep local state.")] = Path(
        "anywhere-controllers"
    ),
    self_cluster: Annotated[
        str | None,
        typer.Option("--self-cluster", help="The cluster whose own API this is (a self-managed cluster)."),
    ] = None,
    identity: Annotated[
        str | None, typer.Option("--identity", help="This candidate's name in the leader election.")
    ] = None,
) -> None:
    """Run the lifecycle controllers against an existing API until SIGTERM (leader-elected).

    How a self-managed cluster manages itself: each of its control plane machines runs this against
    the cluster's own API, and one of them leads."""
    from anywhere.controllers import plane
    from anywhere.runtime import KubeConfigError, load_kubeconfig

    try:
        load_kubeconfig(kubeconfig)
    except (KubeConfigError, OSError) as exc:
        fail(f"--kubeconfig {kubeconfig}: {exc}", code=2)
    raise typer.Exit(plane.main(kubeconfig, data_dir, self_cluster=self_cluster, identity=identity))


def _etcd_options(
    options: ServeOptions,
    endpoints: str | None,
    prefix: str,
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    auto_sync_interval: float,
) -> None:
    """Check the --etcd-* options against --storage before anything starts."""
    from anywhere.storage.etcd import parse_endpoints

    etcd_flags = endpoints is not None or cafile or certfile or keyfile or auto_sync_interval
    if options.storage not in ("sqlite", "etcd"):
        fail(f"--storage {options.storage!r} is not a storage backend; use sqlite or etcd", code=2)
    if options.storage != "etcd":
        if etcd_flags:
            fail("the --etcd-* options need --storage etcd", code=2)
        return
    if not endpoints:
        fail("--storage etcd needs --etcd-endpoints URL[,URL...] (e.g. http://127.0.0.1:2379)", code=2)
    try:
        options.etcd_endpoints = tuple(parse_endpoints(endpoints))
    except ValueError as exc:
        fail(f"--etcd-endpoints: {exc}", code=2)
    if not prefix.startswith("/"):
        fail(f"--etcd-prefix {prefix!r} must start with '/'", code=2)
    if bool(certfile) != bool(keyfile):
        fail("--etcd-certfile and --etcd-keyfile go together", code=2)
    for flag, path in (("--etcd-cafile", cafile), ("--etcd-certfile", certfile), ("--etcd-keyfile", keyfile)):
        if path is not None and not path.is_file():
            fail(f"{flag} {path}: no such file", code=2)
    if auto_sync_interval < 0:
        fail(f"--etcd-auto-sync-interval {auto_sync_interval:g}: give 0 (off) or a number of seconds", code=2)
    options.etcd_auto_sync_interval = auto_sync_interval
    options.etcd_prefix = prefix
    options.etcd_cafile, options.etcd_certfile, options.etcd_keyfile = cafile, certfile, keyfile


def _security_options(
    options: ServeOptions, encryption: Path | None, policy: Path | None, log_path: str | None
) -> None:
    """Load the encryption and audit configuration now, so a bad file stops the start with its reason."""
    from anywhere.apiserver import audit
    from anywhere.apiserver.encryption import EncryptionConfigError, load_config

    if (policy is None) != (log_path is None):
        fail("--audit-policy-file and --audit-log-path go together (use --audit-log-path - for stdout)", 2)
    try:
        if encryption is not None:
            options.encryption_config = load_config(encryption)
        if policy is not None and log_path is not None:
            options.audit_policy = audit.load_policy(policy)
            if log_path != "-":
                audit.open_log(log_path).close()  # a path we cannot write fails now, not later
            options.audit_log_path = log_path
    except (EncryptionConfigError, audit.AuditConfigError) as exc:
        fail(str(exc))


def _auth_options(options: ServeOptions, token_file: Path | None, anonymous: bool) -> None:
    """Check the token file now, so a malformed one stops the start with the line at fault."""
    from anywhere.apiserver.authn import TokenFileError, load_token_file

    if token_file is not None:
        try:
            load_token_file(token_file)
        except TokenFileError as exc:
            fail(str(exc))
    options.token_auth_file = token_file
    options.anonymous_auth = anonymous


@generate_app.command("kubeconfig")
def generate_kubeconfig(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="The data dir of the server (`anywhere serve`).")
    ],
    user: Annotated[str, typer.Option("--user", help="The user name (the client certificate's CN).")],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="A group of the user (the certificate's O); repeatable."),
    ] = None,
    days: Annotated[int, typer.Option("--days", help="How long the client certificate is valid.")] = 365,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Use this bearer token (e.g. from `kubectl create token`) instead of a certificate.",
        ),
    ] = None,
) -> None:
    """Print a kubeconfig for a user of the server in DATA_DIR: a client certificate signed by the
    cluster CA (as `kubeadm kubeconfig user` makes), or a bearer token. What the user may do is up
    to RBAC: bind a Role or ClusterRole to the user or one of its groups."""
    from anywhere.apiserver.authn import user_kubeconfig
    from anywhere.apiserver.pki import PKIError

    if days < 1:
        fail(f"--days {days} must be at least 1", code=2)
    if token is not None and group:
        fail("--group applies to certificates; a token's groups are the ones its issuer gave it", code=2)
    try:
        sys.stdout.write(user_kubeconfig(data_dir, user, tuple(group or ()), days=days, token=token))
    except (ValueError, PKIError) as exc:
        fail(str(exc))


register_tinkerbell(generate_app)  # generate hardware: anywhere.cli.tinkerbell


def run() -> None:
    """Console entry point: typer, with bad input and unexpected failures turned into one line."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: never a traceback for the user
        if os.environ.get("ANYWHERE_DEBUG"):
            raise
        err.print(f"error: internal error: {type(exc).__name__}: {exc} (set ANYWHERE_DEBUG=1 for details)")
        sys.exit(1)
