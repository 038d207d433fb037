"""hfscraper's own errors: a small hierarchy whose classes carry the context a message needs.

    HfScraperError
     └── IpfsError                 an IPFS node or the local content addressing failed
          ├── IpfsPinError         a root could not be pinned, unpinned or confirmed as pinned
          └── IpfsCidMismatchError a CID from the node differs from the one computed here

Each error's `str()` is one line that names what failed and where (the node's URL, the CID, the entity), never
a credential: the IPFS node is not the Hub, and no Hub token is ever sent to it.
"""

from __future__ import annotations


class HfScraperError(Exception):
    """Base class of hfscraper's own errors."""


class IpfsError(HfScraperError):
    """An IPFS operation failed: the node is unreachable, answered with an error, or sent something unusable.

    Attributes:
        cid: the CID the operation was about, when there is one.
        entity: the entity (`"model:owner/name"`) the operation was for, when there is one.
        api: the RPC base URL of the node (`http://127.0.0.1:5001`), when a node was involved.
        status: the HTTP status of the node's answer, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        cid: str | None = None,
        entity: str | None = None,
        api: str | None = None,
        status: int | None = None,
    ) -> None:
        self.message = message
        self.cid = cid
        self.entity = entity
        self.api = api
        self.status = status
        super().__init__(message)

    def __str__(self) -> str:
        context = [f"{name} {value}" for name, value in (("entity", self.entity), ("cid", self.cid)) if value]
        return " ".join(self.message.split()) + (f" ({', '.join(context)})" if context else "")


class IpfsPinError(IpfsError):
    """A root could not be pinned or unpinned, or the node does not list it as pinned afterwards."""


class IpfsCidMismatchError(IpfsError):
    """The node's CID for something differs from the CID computed locally: never accepted silently.

    Attributes:
        expected: the CID computed here (what `ipfs_cid.txt` holds for a folder).
        got: the CID the node answered.
    """

    def __init__(
        self, message: str, *, expected: str, got: str, entity: str | None = None, api: str | None = None
    ) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"{message}: computed {expected}, the node answered {got}", entity=entity, api=api)
