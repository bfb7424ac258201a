"""What the console and the platform API need of the automations engine to run a scene.

The engine (``backend.automations.engine``) implements :class:`SceneRunner`; the app provides
it to the routes as the ``scene_runner`` dependency. This package never imports the engine.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from backend.access.permissions import Principal


@runtime_checkable
class SceneRunner(Protocol):
    """Starts a run of an automation now, by hand (runtime-checkable: the routes' signature
    checks their dependencies with ``isinstance``)."""

    async def run_now(self, automation_id: int, actor: Principal) -> int:
        """Start a run of ``automation_id`` (already checked: visible to ``actor``, a scene, enabled)
        and return its ``automation_run`` id; the actions go on in the background."""
        ...
