"""The service's SQL, one module per table group: routes and parts call these functions and
never write SQL themselves (``keys``, ``catalogs``, ``sessions`` with their pins, ``jobs``)."""
