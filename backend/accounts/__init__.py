"""Users, console sessions, roles, invitations and e-mail (issue #5).

Services (no HTTP in them; the console calls them too):

    sessions.SessionService  server-side sessions behind an HttpOnly cookie, with a CSRF token
    throttle.LoginThrottle   failed sign-ins counted per account and per address (429)
    tokens.OneTimeTokens     e-mailed links that work once and expire
    auth.AuthService         sign-in, sign-out (everywhere), sign-up, password reset and change
    users.UserService        users of the organizations in scope: edit, role, suspend, delete
    roles.RoleService        built-in and custom roles
    invitations.InvitationService   invitations by e-mail, 25 a day per organization
    mail.Mailer              SMTP, or .eml files in DATA_DIR/mail when no server is set

Permissions, principals, scope, guards and paging come from the bottom layer
(``backend.access``). HTTP: ``middleware`` (the session middleware with its CSRF check) and
``controllers`` under ``/api``; ``schemas`` holds their wire types. Errors are the project's
tree (``backend.errors``).

Links in e-mails point at console pages that issue #6 serves: ``/signup/confirm?token=``,
``/password-reset?token=`` and ``/invitations/accept?token=``; each page posts the token to
the matching ``/api`` route.
"""
