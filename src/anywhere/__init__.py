"""anywhere: Kubernetes cluster lifecycle management for infrastructure you own."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anywhere")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
