"""The admin API's endpoints, one module per resource group.

Each module has one ``add_*_routes(router, ctx, ...)`` function that
registers its handlers on the shared router :func:`sbc.admin.api.create_app`
builds (a :class:`~sbc.admin.problems.GuardedRoute` router carrying
:data:`~sbc.admin.problems.COMMON_ERRORS`). Handlers close over the
:class:`~sbc.admin.context.AdminContext` and answer refusals by raising
:class:`~sbc.admin.problems.ProblemError`. Every handler is ``async``: the
context is the live SBC, which is not thread-safe, so handlers run on the
event loop, never in FastAPI's thread pool.

The order in which ``create_app`` calls these functions is the order of
the paths in the OpenAPI document.
"""
