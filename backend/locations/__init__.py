"""Locations, as on Blynk: named places of an organization with an address, coordinates and a
time zone, and the devices assigned to each.

    services.LocationService   list, read, create, change, delete, assign devices (scope-checked, audited)
    controllers                ``/api/locations`` (``locations.view``, ``locations.edit``)
    schemas                    wire types
"""
