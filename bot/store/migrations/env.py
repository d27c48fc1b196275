"""Alembic environment: runs migrations on the engine the bot hands over (no alembic.ini)."""

from alembic import context

import bot.store.models  # noqa: F401  (registers tables on Base.metadata)
import tokens.models  # noqa: F401
from bot.store.db import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
