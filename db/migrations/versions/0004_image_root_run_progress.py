"""dataset versions remember the folder their images were imported from;
training runs record their progress (epoch, loss)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("image_root", sa.Text, nullable=True))
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer, nullable=True))
        batch.add_column(sa.Column("loss", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("loss")
        batch.drop_column("epoch")
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("image_root")
