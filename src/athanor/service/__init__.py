"""The lab service (``athanor serve``): several campaigns on one lab behind a REST API.

:mod:`~athanor.service.manager` runs the campaigns through one lease pool,
:mod:`~athanor.service.control` takes the operators' commands, :mod:`~athanor.service.auth`
checks tokens and roles, :mod:`~athanor.service.routes` and :mod:`~athanor.service.app`
are the API, :mod:`~athanor.service.server` runs it with uvicorn, and
:mod:`~athanor.service.client` is what the CLI's client commands call.
"""
