"""Errors the agent raises: each carries the HTTP status the server answers with."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every agent error; the message is one line, shown to the user as is."""

    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class BundleError(AgentError):
    """A bundle was refused; nothing was installed."""

    http_status = 422


class BundleSignatureInvalid(BundleError):
    pass


class BundleUnknownKey(BundleError):
    pass


class BundleMemberHashMismatch(BundleError):
    pass


class BundleUnsafeMember(BundleError):
    """Absolute path, `..`, a link, a directory or a duplicate name inside the zip."""


class BundleMissingMember(BundleError):
    pass


class BundleUnknownMember(BundleError):
    pass


class BundleTooLarge(BundleError):
    http_status = 413


class BundleZipBomb(BundleError):
    """Too many members or a compression ratio no honest bundle has."""

    http_status = 413


class BundleCorrupt(BundleError):
    """Not a readable zip, or a member that does not decompress."""


class BundleNotRegularFile(BundleError):
    """A FIFO, socket, device, directory or link where a bundle file was expected."""


class BundleManifestInvalid(BundleError):
    pass


class ModelInvalid(BundleError):
    """model.onnx is corrupt, references external data or needs a newer runtime."""


class CanaryFailed(BundleError):
    pass


class DowngradeRefused(AgentError):
    http_status = 409


class VersionConflict(AgentError):
    """The same model version already exists with different content, or is active."""

    http_status = 409


class ModelNotFound(AgentError):
    http_status = 404


class ModelUnavailable(AgentError):
    """The model exists but no version of it could be loaded."""

    http_status = 503


class KeyRotationError(AgentError):
    http_status = 422


class KeyFileError(AgentError):
    pass


class TelemetryFileError(AgentError):
    """A telemetry export file is corrupt, truncated or signed by an unexpected agent."""


class SchemaError(AgentError):
    """A JSON document does not have the shape its schema requires."""


class BundleMemberInvalid(BundleError):
    """baseline.json or canary.json does not follow its schema."""


class VersionCorrupt(ModelUnavailable):
    """An installed version's files no longer match its signed manifest."""
