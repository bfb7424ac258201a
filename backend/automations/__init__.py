"""Automations (issue #13): an organization's rules, each one condition and ordered actions.

``models`` holds the tables, ``schemas`` the condition and action shapes (msgspec tagged
unions), ``service`` the CRUD within the organization scope and the log, ``controllers`` the
console JSON API and ``platform`` the platform API routes. ``engine/`` (triggers, evaluation
and the runner) implements :class:`~backend.automations.runner.SceneRunner`.
"""
