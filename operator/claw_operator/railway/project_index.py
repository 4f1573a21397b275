"""Adoption without listing the world: one index of a workspace's projects by name.

Before creating a project the reconciler asks whether it already exists (a crash between
"Railway created it" and "status recorded it", or a cluster rebuilt from Git). Listing the
workspace for every new instance costs pages per instance, quadratic over a fleet. The
index lists a workspace once, then learns from the operator's own creates and deletes.

A miss is re-listed only when it matters, i.e. when a project of that name may exist
without this index having seen it:
- a create of that name failed ambiguously (Railway may have made it; `create_uncertain`);
- the object may have been handled by another process since the listing (a shard was
  taken over: `invalidate()` marks every listing older than now as stale for misses).
A crash between create and record loses this process's memory, and the next process lists
afresh at its start, so it finds the project.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from claw_operator.railway.types import Project

Lister = Callable[[str | None], Awaitable[list[Project]]]


def _created_key(project: Project) -> tuple[int, datetime, str]:
    """Oldest first; projects without a parseable createdAt sort after dated ones."""
    if project.createdAt:
        try:
            created = datetime.fromisoformat(project.createdAt.replace("Z", "+00:00"))
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            return (0, created, project.id)
        except ValueError:
            pass
    return (1, datetime.max.replace(tzinfo=UTC), project.id)


def oldest(projects: list[Project]) -> Project | None:
    return min(projects, key=_created_key) if projects else None


@dataclass
class _Workspace:
    by_name: dict[str, dict[str, Project]] = field(default_factory=dict)
    listed_at: float | None = None
    listing: asyncio.Future[None] | None = None

    def put(self, project: Project) -> None:
        self.by_name.setdefault(project.name, {})[project.id] = project

    def drop(self, project_id: str) -> None:
        for projects in self.by_name.values():
            projects.pop(project_id, None)


class ProjectIndex:
    """Projects by name, per workspace, for one token."""

    def __init__(self, lister: Lister, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._list = lister
        self._clock = clock
        self._workspaces: dict[str | None, _Workspace] = {}
        self._uncertain: set[tuple[str | None, str]] = set()
        self._stale_before = -1.0
        self.listings = 0

    async def find(self, name: str, marker: str, workspace_id: str | None) -> Project | None:
        """The oldest project named `name` whose description carries `marker`."""
        workspace = self._workspaces.setdefault(workspace_id, _Workspace())
        if workspace.listed_at is None:
            await self._relist(workspace_id, workspace)
        found = self._match(workspace, name, marker)
        if found is None and self._miss_matters(workspace_id, workspace, name):
            await self._relist(workspace_id, workspace)
            found = self._match(workspace, name, marker)
        self._uncertain.discard((workspace_id, name))
        return found

    def created(self, project: Project, workspace_id: str | None) -> None:
        self._workspaces.setdefault(workspace_id, _Workspace()).put(project)
        self._uncertain.discard((workspace_id, project.name))

    def create_uncertain(self, name: str, workspace_id: str | None) -> None:
        """A create of `name` failed in a way that does not prove Railway did not run it."""
        self._uncertain.add((workspace_id, name))

    def deleted(self, project_id: str) -> None:
        for workspace in self._workspaces.values():
            workspace.drop(project_id)

    def invalidate(self) -> None:
        """Someone else may have created projects since the last listing (a takeover)."""
        self._stale_before = self._clock()

    @staticmethod
    def _match(workspace: _Workspace, name: str, marker: str) -> Project | None:
        candidates = workspace.by_name.get(name, {}).values()
        return oldest([p for p in candidates if marker in (p.description or "")])

    def _miss_matters(self, workspace_id: str | None, workspace: _Workspace, name: str) -> bool:
        listed_at = workspace.listed_at if workspace.listed_at is not None else -1.0
        return (workspace_id, name) in self._uncertain or listed_at <= self._stale_before

    async def _relist(self, workspace_id: str | None, workspace: _Workspace) -> None:
        """One listing at a time per workspace; concurrent callers share it."""
        if workspace.listing is not None:
            await asyncio.shield(workspace.listing)
            return
        started = self._clock()
        workspace.listing = asyncio.get_running_loop().create_future()
        try:
            projects = await self._list(workspace_id)
        except BaseException as exc:
            workspace.listing.set_exception(exc)
            workspace.listing.exception()  # retrieved: the waiters re-raise their own copy
            raise
        else:
            fresh = _Workspace(listed_at=started)
            for project in projects:
                fresh.put(project)
            # Creates recorded while the listing was in flight may be missing from it.
            listed = {p.id for by_id in fresh.by_name.values() for p in by_id.values()}
            for by_id in workspace.by_name.values():
                for project in by_id.values():
                    if project.id not in listed:
                        fresh.put(project)
            workspace.by_name, workspace.listed_at = fresh.by_name, started
            self.listings += 1
            workspace.listing.set_result(None)
        finally:
            workspace.listing = None
