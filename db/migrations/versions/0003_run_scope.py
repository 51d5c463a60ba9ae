"""training runs: a scope (what they train for), at most one running and one queued per scope;
annotation events (what Label Studio's webhooks reported)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("scope", sa.String(200), nullable=True))
    for status in ("running", "queued"):
        op.create_index(f"uq_run_{status}", "training_runs", ["scope"], unique=True,
                        sqlite_where=sa.text(f"status = '{status}'"),
                        postgresql_where=sa.text(f"status = '{status}'"))
    op.create_table(
        "annotation_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scope", sa.String(200), nullable=False, index=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("annotation_id", sa.BigInteger, nullable=True),
        sa.Column("task_id", sa.BigInteger, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("annotation_events")
    for status in ("running", "queued"):
        op.drop_index(f"uq_run_{status}", "training_runs")
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("scope")
