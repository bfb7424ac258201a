"""The web console (Blynk.Console), issue #6: server-rendered Jinja2 pages through Litestar,
htmx for partial updates, uPlot for charts, and a small script per page kind.

    routes       the page router (session from the accounts context; signed-out visitors are sent
                 to /login), the template engine, and the static and vendored browser files
    pages_*      page controllers (one service call each, then a template); pages_air is Blynk.Air
    render       ``page()``: renders a template with the user, their permissions and the CSRF token
    live         the WebSocket that carries live values, properties and presence to open pages
    headers      the Content-Security-Policy and framing headers of every HTML answer (the page
                 scripts put server data in as text only: ``window.openblynk.h``, never HTML)
    templates/   Jinja templates;  static/   our CSS and scripts
    vendor       the third-party browser files (htmx, uPlot): the build takes them from npm at
                 the versions of package-lock.json and copies them into static/vendor/, where
                 they are served from; nothing comes from a CDN
"""
