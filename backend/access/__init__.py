"""Access control and paging: the bottom layer every area may import.

    permissions.Permission   the one catalogue of permission names, the built-in roles;
                             Principal = who is asking (a signed-in user or an API client)
    scope.Scope              the organizations one principal may see (their own, and the
                             subtree below it with ``orgs.view_sub``); ancestry and subtree
    guards.requires          the permission guards of every HTTP route, ``PUBLIC``,
                             ``same_origin`` and the peer address
    paging.Page              a page of a list (``page``/``size`` checked by ``page_args``)

This package imports no area (``accounts``, ``orgs``, ``devices``...): only the shared bottom
modules (``backend.errors``, ``backend.db``) and libraries. The areas build on it; the session
middleware that turns a cookie into a :class:`~backend.access.permissions.Principal` lives in
``backend.accounts.middleware``.
"""
