"""Merchant settings: an embedded app merchant's own recipients, digest times and alert options
(one JSON document per app and shop, versioned), and the one-row clock every instance polls to
learn that some merchant's settings changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:15:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'merchant_settings',
        sa.Column('app', sa.String(length=64), nullable=False),
        sa.Column('shop', sa.String(length=255), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('app', 'shop'),
    )
    clock = op.create_table(
        'settings_clock',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(clock, [{'id': 1, 'version': 0}])


def downgrade() -> None:
    op.drop_table('settings_clock')
    op.drop_table('merchant_settings')
