"""The top of the backend: what assembles the areas into the running application.

    factory    create_app: routes, exception handlers, OpenAPI, the one lifespan
    routers    the one list of routers and route handlers, and the dependencies the top provides
    container  Runtime, the typed container of every long-lived part, and ``runtime(app)``
    lifespan   the parts started in a declared order and stopped in the reverse order
    pump       the ingest loop: broker messages in batches, acknowledged after their rows commit
    tables     the SQLModel table registry (every area's tables, so foreign keys resolve)

The areas never import this package: each area's controllers declare the parts they need as
dependencies, and ``routers`` provides them from the container.
"""
