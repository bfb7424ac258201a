"""Automations (issue #13): an organization's rules, each one condition and ordered actions.

- ``schemas``: the condition and action shapes (msgspec tagged unions), checked on every write;
- ``models``: the tables (``automation``, ``automation_run``, ``automation_step``);
- ``service``: making, changing, switching, deleting and running within the caller's scope,
  with the limits and the audit log; ``refs``: what an automation may name (its
  organization's reach); ``choices``: the editor's pickers; ``log`` and ``retention``: reading
  and trimming the log;
- ``controllers`` (the console's JSON API) and ``platform`` (the platform API's routes);
- ``runner``: the :class:`~backend.automations.runner.SceneRunner` protocol, which the engine
  (``engine/``: triggers, evaluation, the runner of actions) implements.
"""
