"""Webhook events: the status index also orders by id, so the worker's claim of the oldest pending rows
(`status = 'pending' AND next_attempt_at IS NULL ORDER BY id LIMIT n`) reads them in order from the
index instead of sorting every pending row, or walking past a week of done ones, for each batch.
Replaces ix_webhook_events_status (a prefix of it): the intake's INSERT keeps one index to maintain.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:10:00
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain index statements (no batch mode): SQLite creates and drops indexes without copying the table.
    op.create_index('ix_webhook_events_due', 'webhook_events', ['status', 'next_attempt_at', 'id'], unique=False)
    op.drop_index('ix_webhook_events_status', table_name='webhook_events')


def downgrade() -> None:
    op.create_index('ix_webhook_events_status', 'webhook_events', ['status', 'next_attempt_at'], unique=False)
    op.drop_index('ix_webhook_events_due', table_name='webhook_events')
