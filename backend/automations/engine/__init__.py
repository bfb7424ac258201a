"""The automation engine (issue #13): triggers, evaluation, the runner of actions and waits.

:class:`AutomationEngine` (one per app process) fires automations on time (stored scheduler
jobs), on device values, presence and events (``DeviceSignals``) and by hand (scenes), and runs
them with :class:`~.runner.Runner`, which writes the automation log.
"""

from backend.automations.engine.engine import AutomationEngine

__all__ = ["AutomationEngine"]
