"""What the web console needs beyond the other contexts (issue #6).

    dashboards.DashboardService   a template's web dashboard: widgets on a 12-column grid
    mobile.MobileDashboardService a template's mobile dashboard: ordered widgets on a phone's 4 columns
    images.ImageLibrary           an organization's images (image buttons' pictures): upload, list, serve, delete
    templates.TemplateEditor      templates of the organizations in scope, edited piece by piece
    devices.DeviceConsole         devices in scope: create, token, values, writes, history, timeline
    controllers                   the JSON routes the console pages call, under ``/api``
    image_controllers             the image library's routes, under ``/api/console/images``

Live values reach the pages through ``backend.devices.live.LiveFeed`` (the WebSocket is a
console page route, ``console_ui.live``, which checks access through ``live_access.LiveAccess``).
Permissions and sessions are the accounts context's: these routes use its guards; their
services come from ``context.console_dependencies`` (``con``, ``live_access``).
"""
