"""Initial schema: Kakao logins, deliveries, job memory.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 04:47:41.999516
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job', sa.String(length=100), nullable=False),
    sa.Column('slot_key', sa.String(length=80), nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('sender', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('code', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('quota_day', sa.String(length=10), nullable=False),
    sa.Column('claimed_by', sa.String(length=120), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job', 'slot_key', 'recipient', name='uq_delivery')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_created', ['created_at'], unique=False)
        batch_op.create_index('ix_deliveries_recipient_day', ['recipient', 'quota_day'], unique=False)
        batch_op.create_index('ix_deliveries_sender_day', ['sender', 'quota_day'], unique=False)

    op.create_table('job_memory',
    sa.Column('job', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value_json', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job', 'key')
    )
    op.create_table('kakao_logins',
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('access_token_enc', sa.Text(), nullable=False),
    sa.Column('access_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refresh_token_enc', sa.Text(), nullable=False),
    sa.Column('refresh_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('needs_login_reason', sa.Text(), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account')
    )


def downgrade() -> None:
    op.drop_table('kakao_logins')
    op.drop_table('job_memory')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_sender_day')
        batch_op.drop_index('ix_deliveries_recipient_day')
        batch_op.drop_index('ix_deliveries_created')

    op.drop_table('deliveries')
