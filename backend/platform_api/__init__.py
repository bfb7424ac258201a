"""Blynk's platform (organization) API, issue #5 item 4.

    oauth.OAuthClientService   OAuth2 clients of an organization (secret shown once, stored hashed)
    oauth.TokenService         /oauth2/token grants and Bearer authentication (a Principal per client)
    ratelimit.count_request    requests per organization per minute, shared by every app process
    auth.BearerMiddleware      Bearer token -> Principal, then the rate limit
    devices.PlatformDevices    devices, values, properties, events, timeline in Blynk's shapes
    history.PlatformHistory    history pages, buckets, raw cursor pages, streamed exports
    directory.PlatformDirectory  organizations, templates and users
    controllers, directory_controllers, http   the routes (thin; the guards of ``backend.access``)

Device life-cycle changes are ``backend.devices.admin.DeviceAdmin`` (shared with the console).
"""
