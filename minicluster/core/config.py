"""The one configuration model: config.yaml parsed and checked with pydantic.

Every other part of minicluster (exporter, trainer, renderers, deploy, launcher) reads
its settings from a `Config`, either loaded from a file with `load_config()` or built by
`local_profile()`. Errors are `ConfigError`s whose text is a single line naming the file,
the key path and the reason.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from minicluster.core import layout
from minicluster.core.collectors import COLLECTOR_NAMES

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveFloat = Annotated[float, Field(gt=0)]
Ratio = Annotated[float, Field(gt=0, le=1)]

# macOS refuses launchd jobs access to these folders (TCC) or hangs them on a consent
# prompt; nothing the services read or write may live there.
TCC_PROTECTED = ("Documents", "Desktop", "Downloads")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")
# POSIX portable user names; never a leading '-', which ssh would read as an option.
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
# Interface names as ifconfig and ip print them (IFNAMSIZ: at most 15 characters).
_INTERFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$")
# A login name that is one ini value: no newline could start a new section in grafana.ini.
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


def _one_line(value: str) -> str:
    """Paths and text that reach a shell, ssh, an ini or plist file or an environment
    assignment: no newline, NUL or other control character."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} must be one line with no control characters")
    return value


def _absolute_path(value: str) -> str:
    _one_line(value)
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path (launchd has no working dir)")
    return value


def _numeric(annotation: object) -> bool:
    """True for int/float fields, also inside Annotated[...] and `X | None`."""
    if annotation in (int, float):
        return True
    return get_origin(annotation) in (Union, Annotated, type(int | None)) and any(
        _numeric(arg) for arg in get_args(annotation)
    )


class ConfigError(Exception):
    """A configuration problem, rendered as one line: `file: key.path: reason`."""

    def __init__(self, source: str, path: str, reason: str):
        self.source, self.path, self.reason = source, path, reason
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + reason)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: object, info: ValidationInfo) -> object:
        # pydantic reads `true` as 1: a port or count must be written as a number.
        if isinstance(value, bool) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"{str(value).lower()} is a boolean; a number is expected")
        return value


class ClusterSettings(_Section):
    name: str = "minicluster"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The name is Prometheus' external label `cluster`: 3.x expands $VAR and ${VAR} in
        # external label values and 2.42 does not, so only characters both read alike.
        if not _CLUSTER_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r}: use letters, digits, '.', '_' and '-' (up to 63, starting with a "
                "letter or digit); it becomes Prometheus' external label, where 3.x expands '$'"
            )
        return value


class NodeSettings(_Section):
    name: str
    address: str
    role: Literal["master", "worker"]
    ssh_user: str
    ssh_port: Port = 22
    # Private key and known_hosts file for deploy/doctor; None means ssh's own defaults
    # (~/.ssh/config, the agent, ~/.ssh/known_hosts).
    ssh_key: str | None = None
    ssh_known_hosts_file: str | None = None
    install_dir: str = "/opt/minicluster"
    # The interface that carries training traffic: gloo binds to it (GLOO_SOCKET_IFNAME).
    interface: str = "en0"
    exporter_port: Port = 9100
    # Base interpreter the node's venv is created from (a pinned Homebrew Python).
    python: str = "/opt/homebrew/bin/python3.12"
    # Overrides trainer.metrics_base_port on this node (two "nodes" on one host).
    metrics_base_port: Port | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be lower-case letters, digits and '-' (a DNS label)")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.fullmatch(value):
                raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
        return value

    @field_validator("install_dir", "python")
    @classmethod
    def _absolute(cls, value: str) -> str:
        _one_line(value)
        if not PurePosixPath(value).is_absolute():
            raise ValueError(f"{value!r} must be an absolute path (launchd has no working dir)")
        return value

    @field_validator("install_dir")
    @classmethod
    def _install_dir(cls, value: str) -> str:
        # It is assigned in the remote launch's environment (VAR=value): '=' and spaces split it.
        if "=" in value or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} must have no '=' and no spaces")
        return value

    @field_validator("ssh_user")
    @classmethod
    def _ssh_user(cls, value: str) -> str:
        if not _USER.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a user name (letters, digits, '_', '.', '-', not starting "
                "with '-' or a digit, up to 32)"
            )
        return value

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str) -> str:
        if not _INTERFACE.fullmatch(value):
            raise ValueError(f"{value!r} is not an interface name (like en0 or bridge0)")
        return value

    @field_validator("ssh_key", "ssh_known_hosts_file")
    @classmethod
    def _ssh_file(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _one_line(value)
        # Given to ssh as -o UserKnownHostsFile=..., where whitespace separates files.
        if any(c.isspace() for c in value) or value.startswith("-"):
            raise ValueError(f"{value!r} must have no spaces and not start with '-'")
        return value

    @property
    def venv_python(self) -> str:
        return layout.venv_python(self)

    @property
    def run_dir(self) -> str:
        """Where this node's trainer ranks drop their discovery files for the exporter."""
        return layout.run_dir(self)

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address as an IP, or None when it is a host name."""
        try:
            return ipaddress.ip_address(self.address)
        except ValueError:
            return None

    @property
    def is_loopback(self) -> bool:
        return self.ip.is_loopback if self.ip else self.address == "localhost"


class ExporterSettings(_Section):
    disabled_collectors: list[str] = Field(default_factory=list)
    # A collector that takes longer than this is reported as failed for that scrape.
    collector_timeout_seconds: PositiveFloat = 2.0
    max_concurrent_scrapes: Annotated[int, Field(ge=1, le=64)] = 4
    peer_probe_timeout_seconds: PositiveFloat = 1.0
    # node_exporter's web-config format: tls_server_config and basic_auth_users (bcrypt).
    web_config_file: str | None = None
    # node_exporter's --collector.textfile.directory: the *.prom files other programs write
    # there are served at every scrape. Null leaves the collector on with nothing to read.
    textfile_directory: str | None = None

    @field_validator("textfile_directory")
    @classmethod
    def _textfile_directory(cls, value: str | None) -> str | None:
        return None if value is None else cls.check_textfile_directory(value)

    @field_validator("web_config_file")
    @classmethod
    def _web_config_file(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_path(value)

    @staticmethod
    def check_textfile_directory(value: str) -> str:
        """The exporter runs from launchd with no useful working directory: absolute only."""
        if any(c in value for c in "\n\r\0"):
            raise ValueError("must be a single line")
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path")
        return value


class PrometheusSettings(_Section):
    port: Port = 9090
    # Homebrew's paths on Apple Silicon; promtool is looked up beside the binary.
    binary: str = "/opt/homebrew/bin/prometheus"
    scrape_interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 15
    scrape_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    evaluation_interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 15
    sd_refresh_seconds: Annotated[int, Field(ge=1, le=600)] = 5
    retention: Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$")] = "15d"

    @field_validator("binary")
    @classmethod
    def _binary(cls, value: str) -> str:
        return _absolute_path(value)


class AlertmanagerSettings(_Section):
    port: Port = 9093
    binary: str = "/opt/homebrew/bin/alertmanager"
    # Where alerts are POSTed; empty means alerts are only shown in Alertmanager's UI.
    webhook_url: str | None = None
    group_wait_seconds: Annotated[int, Field(ge=0)] = 10
    repeat_interval_hours: Annotated[int, Field(ge=1)] = 4

    @field_validator("binary")
    @classmethod
    def _binary(cls, value: str) -> str:
        return _absolute_path(value)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} must be an http:// or https:// URL")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"{value!r} must have no whitespace or control characters")
        return value


class GrafanaSettings(_Section):
    port: Port = 3000
    binary: str = "/opt/homebrew/bin/grafana"
    homepath: str = "/opt/homebrew/opt/grafana/share/grafana"
    admin_user: str = "admin"
    # Generated on first render, mode 0600, outside the repository.
    admin_password_file: str = "~/.config/minicluster/grafana-admin-password"
    secret_key_file: str = "~/.config/minicluster/grafana-secret-key"

    @field_validator("binary", "homepath")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _absolute_path(value)

    @field_validator("admin_user")
    @classmethod
    def _admin_user(cls, value: str) -> str:
        if not _LOGIN.fullmatch(value):
            raise ValueError(
                f"{value!r}: use letters, digits and . _ @ + - (up to 64, one line); it is "
                "written into grafana.ini"
            )
        return value

    @field_validator("admin_password_file", "secret_key_file")
    @classmethod
    def _secret_file(cls, value: str) -> str:
        _one_line(value)
        # grafana.ini reads it as $__file{path}: a brace would end the path early.
        if "{" in value or "}" in value:
            raise ValueError(f"{value!r} must have no braces")
        return value


class TrainerSettings(_Section):
    nproc_per_node: Annotated[int, Field(ge=1, le=64)] = 1
    metrics_base_port: Port = 9400
    rendezvous_port: Port = 29400
    model: Literal["mlp", "transformer"] = "mlp"
    hidden_size: Annotated[int, Field(ge=1, le=65536)] = 256
    layers: Annotated[int, Field(ge=1, le=64)] = 2
    vocab_size: Annotated[int, Field(ge=2, le=65536)] = 64
    seq_len: Annotated[int, Field(ge=2, le=8192)] = 32
    heads: Annotated[int, Field(ge=1, le=64)] = 4
    dataset_size: Annotated[int, Field(ge=1)] = 8192
    batch_size: Annotated[int, Field(ge=1)] = 32
    steps: Annotated[int, Field(ge=1)] = 200
    learning_rate: PositiveFloat = 0.01
    seed: int = 0
    log_interval: Annotated[int, Field(ge=1)] = 10
    # Relative paths are below each node's install_dir.
    checkpoint_dir: str = "checkpoints"
    checkpoint_interval: Annotated[int, Field(ge=0)] = 50
    # Saves kept per job (at least 2: a node may be one save ahead of the others), and how
    # old a job's newest checkpoint may get before its folder is removed.
    checkpoint_keep_last: Annotated[int, Field(ge=2, le=1000)] = 2
    checkpoint_max_age_days: PositiveFloat = 30.0
    log_dir: str = "logs"
    max_restarts: Annotated[int, Field(ge=0, le=100)] = 3
    # torch.distributed's gloo default is 30 minutes; a dead peer should fail a job sooner.
    pg_timeout_seconds: Annotated[int, Field(ge=5, le=86400)] = 120
    rendezvous_timeout_seconds: Annotated[int, Field(ge=5, le=86400)] = 120
    device: Literal["auto", "cpu", "mps", "cuda"] = "auto"
    linger_seconds: Annotated[float, Field(ge=0, le=3600)] = 20.0
    # What the gradient all-reduce sends: torch's DDP comm hooks (minicluster.track.compression).
    grad_compression: Literal["none", "fp16", "bf16", "powersgd"] = "none"
    # DDP's gradient bucket size: fewer, larger all-reduces amortise per-call latency.
    bucket_cap_mb: Annotated[float, Field(gt=0, le=1024)] = 25.0

    @field_validator("checkpoint_dir", "log_dir")
    @classmethod
    def _node_dir(cls, value: str) -> str:
        _one_line(value)
        if "=" in value:
            raise ValueError(f"{value!r} must have no '='")
        return value

    def resolve_dir(self, value: str, node: NodeSettings) -> str:
        return layout.resolve(node, value)


class AlertThresholds(_Section):
    # How long an exporter may be silent before NodeExporterDown fires.
    exporter_down_minutes: PositiveFloat = 2
    cpu_saturated_ratio: Ratio = 0.9
    memory_available_min_ratio: Ratio = 0.1
    # kern.memorystatus_vm_pressure_level: 1 normal, 2 warn, 4 critical.
    memory_pressure_level: Literal[2, 4] = 2
    filesystem_free_min_ratio: Ratio = 0.1
    filesystem_predict_full_hours: Annotated[int, Field(ge=1)] = 24
    swap_bytes_per_second: Annotated[float, Field(ge=0)] = 1_048_576.0
    network_error_ratio: Ratio = 0.01
    nic_saturation_ratio: Ratio = 0.9
    peer_rtt_max_seconds: PositiveFloat = 0.01
    clock_skew_max_seconds: PositiveFloat = 0.05
    # Minutes, fractions allowed: tests use 0.25 to see TrainerStalled/RankDown in seconds.
    trainer_stalled_minutes: PositiveFloat = 5
    straggler_ratio: Ratio = 0.8
    comm_fraction_max: Ratio = 0.5
    checkpoint_overdue_minutes: Annotated[int, Field(ge=1)] = 30
    # How long a condition must hold before its alert fires (`for:`), in minutes.
    cpu_saturated_for_minutes: PositiveFloat = 15
    memory_pressure_for_minutes: PositiveFloat = 5
    memory_low_for_minutes: PositiveFloat = 5
    filesystem_almost_full_for_minutes: PositiveFloat = 5
    filesystem_filling_up_for_minutes: PositiveFloat = 60
    swapping_for_minutes: PositiveFloat = 5
    network_errors_for_minutes: PositiveFloat = 5
    nic_saturated_for_minutes: PositiveFloat = 5
    peer_unreachable_for_minutes: PositiveFloat = 2
    peer_slow_for_minutes: PositiveFloat = 5
    clock_skew_for_minutes: PositiveFloat = 5
    straggler_for_minutes: PositiveFloat = 10
    comm_bound_for_minutes: PositiveFloat = 10
    checkpoint_overdue_for_minutes: PositiveFloat = 5
    target_down_for_minutes: PositiveFloat = 5
    # Where docs/runbooks.md is published (http or https), so that each alert's runbook_url
    # is a link Alertmanager and Grafana can open; unset, it is the repository-relative path.
    runbook_base_url: str | None = None

    @field_validator("runbook_base_url")
    @classmethod
    def _runbook_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} must be an http:// or https:// URL")
        if any(c.isspace() for c in value) or parts.fragment or value.endswith("#"):
            raise ValueError(f"{value!r} must have no whitespace and no #anchor")
        return value


class SecuritySettings(_Section):
    # Mutual TLS for exporters and trainer ranks, HTTPS and basic auth for Prometheus and
    # Alertmanager. Only the local demo on loopback turns it off.
    tls: bool = True
    # The cluster CA, certificates and web password on the control machine (never a node),
    # one folder per cluster name below it; refused inside the repository when used.
    pki_dir: str = "~/.config/minicluster/pki"

    @field_validator("pki_dir")
    @classmethod
    def _pki_dir(cls, value: str) -> str:
        _one_line(value)
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class Config(_Section):
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    nodes: Annotated[list[NodeSettings], Field(min_length=1)]
    exporter: ExporterSettings = Field(default_factory=ExporterSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    alerts: AlertThresholds = Field(default_factory=AlertThresholds)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @property
    def master(self) -> NodeSettings:
        return next(node for node in self.nodes if node.role == "master")

    def node(self, name: str) -> NodeSettings:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(node.name for node in self.nodes)
        raise KeyError(f"no node named {name!r} (config has: {known})")

    def metrics_base_port(self, node: NodeSettings) -> int:
        return node.metrics_base_port or self.trainer.metrics_base_port

    def rank_ports(self, node: NodeSettings) -> range:
        base = self.metrics_base_port(node)
        return range(base, base + self.trainer.nproc_per_node)

    @property
    def world_size(self) -> int:
        return len(self.nodes) * self.trainer.nproc_per_node

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --- loading ---------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def key_path(loc: tuple) -> str:
    """('nodes', 1, 'exporter_port') -> 'nodes[1].exporter_port'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_config(data: object, source: str) -> Config:
    """Validate already-parsed YAML data; raise ConfigError on the first problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "the top level must be a mapping of sections")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        reason = error["msg"]
        if error["type"] == "extra_forbidden":
            reason = "unknown key"
        elif error["type"] == "missing":
            reason = "required key is missing"
        elif error["type"] == "value_error":
            reason = reason.removeprefix("Value error, ")
        raise ConfigError(source, key_path(error["loc"]), reason) from None
    check_config(config, source)
    return config


# A config.yaml is a few KB; these bound what a hostile or broken file can cost to read.
MAX_FILE_BYTES = 1 << 20
MAX_NESTING = 32
MAX_EXPANDED_NODES = 100_000


class _BoundedLoader(_UniqueKeyLoader):
    """Refuses nesting deeper than MAX_NESTING while composing (the composer recurses)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_NESTING} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has once aliases are expanded (billion laughs)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise ValueError("an alias refers to a node that contains it")
        active.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(id(node))
        sizes[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
        return sizes[id(node)]

    return size(root)


def read_yaml(path: str | Path, source: str) -> object:
    """Parse a YAML file with bounded size, nesting and alias expansion; every problem is
    one ConfigError naming the file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(source, "", f"larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start})") from None
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root) > MAX_EXPANDED_NODES:
            raise ConfigError(
                source, "", f"aliases expand to more than {MAX_EXPANDED_NODES} values"
            )
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, "", f"{line}invalid YAML: {problem}") from None
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise ConfigError(source, "", f"invalid YAML: {reason}") from None
    finally:
        loader.dispose()


def load_config(path: str | Path) -> Config:
    """Read and validate a config.yaml."""
    source = str(path)
    return parse_config(read_yaml(path, source), source)


# --- checks across fields ------------------------------------------------------------------


def _tcc_folder(path: str) -> str | None:
    parts = PurePosixPath(path).parts
    for index, part in enumerate(parts):
        if part not in TCC_PROTECTED:
            continue
        under_home = index == 1 and parts[0] == "~"
        under_users = index == 3 and parts[:2] == ("/", "Users")
        if under_home or under_users:
            return part
    return None


def check_config(config: Config, source: str) -> None:
    """The rules pydantic's per-field types cannot express; raise on the first violation."""
    masters = [i for i, node in enumerate(config.nodes) if node.role == "master"]
    if not masters:
        raise ConfigError(source, "nodes", "no node has role master (exactly one must)")
    if len(masters) > 1:
        first = config.nodes[masters[0]].name
        raise ConfigError(
            source, f"nodes[{masters[1]}].role", f"a second master (the first is {first})"
        )

    names: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for i, node in enumerate(config.nodes):
        if node.name in names:
            raise ConfigError(
                source, f"nodes[{i}].name", f"{node.name!r} is already nodes[{names[node.name]}]"
            )
        names[node.name] = i
        # Several "nodes" may share a loopback address: that is one machine acting as many.
        if node.address in addresses and not node.is_loopback:
            other = config.nodes[addresses[node.address]].name
            raise ConfigError(
                source, f"nodes[{i}].address", f"{node.address} is already the address of {other}"
            )
        addresses.setdefault(node.address, i)

    prom = config.prometheus
    if prom.scrape_timeout_seconds > prom.scrape_interval_seconds:
        raise ConfigError(
            source,
            "prometheus.scrape_timeout_seconds",
            f"{prom.scrape_timeout_seconds} is longer than scrape_interval_seconds "
            f"({prom.scrape_interval_seconds})",
        )

    for disabled in config.exporter.disabled_collectors:
        if disabled not in COLLECTOR_NAMES:
            known = ", ".join(sorted(COLLECTOR_NAMES))
            raise ConfigError(
                source, "exporter.disabled_collectors", f"unknown collector {disabled!r} ({known})"
            )

    _check_ports(config, source)
    _check_paths(config, source)


def _check_ports(config: Config, source: str) -> None:
    """Every port is claimed once per host; nodes sharing an address are one host."""
    claimed: dict[tuple[str, int], str] = {}

    def claim(node: NodeSettings, port: int, owner: str, path: str) -> None:
        key = (node.address, port)
        if key in claimed:
            raise ConfigError(source, path, f"{port} is already used by {claimed[key]}")
        claimed[key] = f"{owner} on {node.name}"

    master = config.master
    claim(master, config.prometheus.port, "prometheus", "prometheus.port")
    claim(master, config.alertmanager.port, "alertmanager", "alertmanager.port")
    claim(master, config.grafana.port, "grafana", "grafana.port")
    claim(master, config.trainer.rendezvous_port, "the rendezvous", "trainer.rendezvous_port")
    for i, node in enumerate(config.nodes):
        claim(node, node.exporter_port, "the exporter", f"nodes[{i}].exporter_port")
        base_path = (
            f"nodes[{i}].metrics_base_port"
            if node.metrics_base_port
            else "trainer.metrics_base_port"
        )
        for local_rank, port in enumerate(config.rank_ports(node)):
            if port > 65535:
                raise ConfigError(source, base_path, f"rank port {port} is above 65535")
            claim(node, port, f"trainer local rank {local_rank}", base_path)


def _check_paths(config: Config, source: str) -> None:
    checks = [(f"nodes[{i}].install_dir", n.install_dir) for i, n in enumerate(config.nodes)]
    checks += [
        ("trainer.checkpoint_dir", config.trainer.checkpoint_dir),
        ("trainer.log_dir", config.trainer.log_dir),
    ]
    for path, value in checks:
        folder = _tcc_folder(value)
        if folder:
            raise ConfigError(
                source,
                path,
                f"{value!r} is under ~/{folder}, which macOS (TCC) blocks for launchd jobs",
            )


# --- before connecting ---------------------------------------------------------------------

# Documentation ranges (RFC 5737, RFC 3849): config.example.yaml's placeholders. No host
# answers there; a connection would only hang until a timeout and then blame ssh.
PLACEHOLDER_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def require_real_addresses(config: Config, source: str) -> None:
    """Raise ConfigError naming the first node whose address is still a placeholder.
    Commands that connect to the nodes call this before opening any connection."""
    for i, node in enumerate(config.nodes):
        ip = node.ip
        network = next((net for net in PLACEHOLDER_NETWORKS if ip and ip in net), None)
        if network is not None:
            raise ConfigError(
                source,
                f"nodes[{i}].address",
                f"{node.address} is a placeholder (documentation range {network}): "
                f"edit node {node.name} to its real address (on that Mini: "
                f"ipconfig getifaddr {node.interface})",
            )
