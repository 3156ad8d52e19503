"""alembic's environment: migrate the connection ``upgrade()`` hands over, or (from the alembic
command line) the database named by ``-x url=…``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from audiorag.api.db import engine_url, metadata

connection = context.config.attributes.get("connection")
if connection is None:  # the alembic command line
    url = context.get_x_argument(as_dictionary=True)["url"]
    with sa.create_engine(engine_url(url)).begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
