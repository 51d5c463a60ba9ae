"""images, datasets and immutable dataset versions

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("phash", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("dataset_versions.id")),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("coco_path", sa.Text, nullable=False),
        sa.Column("coco_sha256", sa.String(64), nullable=False),
        sa.Column("n_images", sa.Integer, nullable=False),
        sa.Column("n_instances", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("dataset_id", "version"),
        sa.UniqueConstraint("dataset_id", "coco_sha256"),
    )
    op.create_table(
        "version_images",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("file_name", sa.String(1000), primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), nullable=False, index=True),
        sa.Column("annotations_sha256", sa.String(64), nullable=False),
        sa.Column("n_instances", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("version_images", "dataset_versions", "datasets", "images"):
        op.drop_table(table)
