"""Prometheus configuration: the model (frozen dataclasses), the YAML loader, relabeling and
file-based service discovery."""

from omtsdb.config.errors import ConfigError
from omtsdb.config.filesd import FileSDError, TargetGroup, read_file_sd, read_target_file
from omtsdb.config.load import load_config, parse_config
from omtsdb.config.model import (
    DEFAULT_SCRAPE_PROTOCOLS,
    AlertingConfig,
    AlertmanagerConfig,
    Authorization,
    BasicAuth,
    Config,
    FileSDConfig,
    GlobalConfig,
    HTTPClientConfig,
    QueueConfig,
    RelabelConfig,
    RemoteWriteConfig,
    ScrapeConfig,
    StaticConfig,
    StorageConfig,
    TLSConfig,
)
from omtsdb.config.relabel import Relabeler, compile_relabel, relabel

__all__ = [
    "DEFAULT_SCRAPE_PROTOCOLS",
    "AlertingConfig",
    "AlertmanagerConfig",
    "Authorization",
    "BasicAuth",
    "Config",
    "ConfigError",
    "FileSDConfig",
    "FileSDError",
    "GlobalConfig",
    "HTTPClientConfig",
    "QueueConfig",
    "RelabelConfig",
    "Relabeler",
    "RemoteWriteConfig",
    "ScrapeConfig",
    "StaticConfig",
    "StorageConfig",
    "TLSConfig",
    "TargetGroup",
    "compile_relabel",
    "load_config",
    "parse_config",
    "read_file_sd",
    "read_target_file",
    "relabel",
]
