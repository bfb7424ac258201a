"""Notifications (issue #13): in-app notifications of users (the console's bell), their
preferences, notification e-mail with a per-organization hourly limit, and Blynk's
notification settings of template events.

Errors: :class:`backend.errors.NotificationLimitError` (the hourly e-mail limit is spent),
:class:`backend.errors.MailError` (the SMTP server refused a message), ``NotFoundError`` for a
notification that is not the caller's.
"""
