"""splits, model versions, training runs, scores

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "splits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scheme", sa.String(100), nullable=False),
        sa.Column("ratios", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("dedup_threshold", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("dataset_id", "scheme"),
    )
    op.create_table(
        "split_assignments",
        sa.Column("split_id", sa.Integer, sa.ForeignKey("splits.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("subset", sa.String(20), nullable=False),
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("assigned_in_version", sa.Integer, sa.ForeignKey("dataset_versions.id"), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        sa.Column("dataset_version_id", sa.Integer, sa.ForeignKey("dataset_versions.id")),
        sa.Column("split_id", sa.Integer, sa.ForeignKey("splits.id")),
        sa.Column("checkpoint_path", sa.Text),
        sa.Column("checkpoint_sha256", sa.String(64)),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_index("uq_model_promoted", "model_versions", ["name"], unique=True,
                    sqlite_where=sa.text("promoted = 1"), postgresql_where=sa.text("promoted"))
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_path", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.UniqueConstraint("image_id", "model_version_id", "name"),
    )


def downgrade() -> None:
    for table in ("scores", "training_runs"):
        op.drop_table(table)
    op.drop_index("uq_model_promoted", "model_versions")
    for table in ("model_versions", "split_assignments", "splits"):
        op.drop_table(table)
