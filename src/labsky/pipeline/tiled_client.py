"""Tiled clients whose `.v1`/`.v2`/`.v3` views leave other runs alone.

bluesky-tiled-plugins (2.0.12) switches a catalog or a run between its v2 and
v3 views by `copy.copy(self.structure_clients)` and `.set("BlueskyRun", ...)`
on the copy. Tiled's `OneShotCachedMap` copies share their dictionary, so the
switch rewrites the process-wide default: after one `catalog.v1` (databroker's
`Broker` takes `.v2`) or one `run.v2`, every run read later in the process is
a v2 run, and `run["primary"]["x"]` raises KeyError. Clients made here carry a
map whose copies are real copies, so a view switch stays in its view.
"""

from __future__ import annotations

from typing import Any

from tiled.client.container import DEFAULT_STRUCTURE_CLIENT_DISPATCH
from tiled.utils import OneShotCachedMap


class StructureClients(OneShotCachedMap):
    """Tiled's structure-client map, with a `copy.copy` that copies."""

    __slots__ = ()

    @classmethod
    def copy_of(cls, clients: OneShotCachedMap) -> StructureClients:
        """A map with its own dictionary holding what `clients` holds."""
        clone = cls()
        clone.__setstate__(dict(clients.__getstate__()))
        return clone

    def __copy__(self) -> StructureClients:
        return self.copy_of(self)


def structure_clients(kind: str = "numpy") -> StructureClients:
    """A private copy of Tiled's default structure clients ("numpy" or "dask").

    With the clients packages register (bluesky-tiled-plugins' `BlueskyRun`,
    ...), which Tiled adds to its defaults on the first `from_uri`.
    """
    from tiled.client.container import Container

    Container.discover_clients_from_entrypoints()
    return StructureClients.copy_of(DEFAULT_STRUCTURE_CLIENT_DISPATCH[kind])


def connect(url: str, api_key: str | None = None, **kwargs: Any) -> Any:
    """`tiled.client.from_uri`, with structure clients of the client's own."""
    from tiled.client import from_uri

    kwargs.setdefault("structure_clients", structure_clients())
    return from_uri(url, api_key=api_key, **kwargs)
