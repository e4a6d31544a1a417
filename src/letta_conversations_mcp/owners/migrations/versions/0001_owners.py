"""The first schema: owned conversations and creates in flight.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lcm_owned_conversations",
        sa.Column("conversation_id", sa.String(200), primary_key=True),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("slot", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("lcm_owned_by_owner", "lcm_owned_conversations", ["owner", "agent_id", "slot"])
    op.create_table(
        "lcm_pending_creates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("slot", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("lcm_pending_by_owner", "lcm_pending_creates", ["owner", "agent_id"])


def downgrade() -> None:
    op.drop_table("lcm_pending_creates")
    op.drop_table("lcm_owned_conversations")
