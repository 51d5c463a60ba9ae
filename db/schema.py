"""Tables of the store (SQLAlchemy 2 declarative).

Portable SQL only: the same models run on SQLite and PostgreSQL. JSON columns
hold what is read whole (categories, counts, configs, metrics); everything that
is queried or joined on is a real column.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Image(Base):
    """A picture, identified by its content: the same bytes under two names are one image."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)  # relative to the image root it was imported from
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    phash: Mapped[int] = mapped_column(BigInteger)  # 64-bit DCT hash, stored signed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    categories: Mapped[list] = mapped_column(JSON, default=list)  # [{"id", "name"}] of the latest version
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    versions: Mapped[list[DatasetVersion]] = relationship(back_populates="dataset", order_by="DatasetVersion.version")


class DatasetVersion(Base):
    """An immutable snapshot: a COCO file in the store and what it holds."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        UniqueConstraint("dataset_id", "coco_sha256"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    message: Mapped[str] = mapped_column(Text, default="")
    coco_path: Mapped[str] = mapped_column(Text)  # relative to the store directory
    # the folder the images were imported from (absolute): where training reads them; None before 0004
    image_root: Mapped[str | None] = mapped_column(Text)
    coco_sha256: Mapped[str] = mapped_column(String(64))
    n_images: Mapped[int] = mapped_column(Integer)
    n_instances: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)  # category name -> instances
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dataset: Mapped[Dataset] = relationship(back_populates="versions")


class VersionImage(Base):
    """Which images a version holds, under which file name, and a hash of their annotations."""

    __tablename__ = "version_images"
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(1000), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    annotations_sha256: Mapped[str] = mapped_column(String(64))
    n_instances: Mapped[int] = mapped_column(Integer)


class Split(Base):
    """A named split scheme of a dataset; assignments only ever grow."""

    __tablename__ = "splits"
    __table_args__ = (UniqueConstraint("dataset_id", "scheme"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    scheme: Mapped[str] = mapped_column(String(100))
    ratios: Mapped[dict] = mapped_column(JSON)  # {"train": 0.8, "val": 0.1, "test": 0.1}
    seed: Mapped[int] = mapped_column(Integer)
    dedup_threshold: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SplitAssignment(Base):
    __tablename__ = "split_assignments"
    split_id: Mapped[int] = mapped_column(ForeignKey("splits.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    subset: Mapped[str] = mapped_column(String(20))
    group_id: Mapped[int] = mapped_column(Integer)  # near-duplicate group (its first image's id)
    assigned_in_version: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        # at most one promoted version per name, enforced by the database itself
        Index("uq_model_promoted", "name", unique=True,
              sqlite_where=text("promoted = 1"), postgresql_where=text("promoted")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    split_id: Mapped[int | None] = mapped_column(ForeignKey("splits.id"))
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="training")  # training ready failed archived
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def label(self) -> str:
        """What Label Studio shows as ``model_version``."""
        return f"{self.name}-v{self.version}"


class TrainingRun(Base):
    """One training job. ``scope`` names what it trains for (a dataset, a
    Label Studio project): the database allows one running and one queued
    run per scope, so concurrent triggers cannot start two."""

    __tablename__ = "training_runs"
    __table_args__ = tuple(
        Index(f"uq_run_{status}", "scope", unique=True, sqlite_where=text(f"status = '{status}'"),
              postgresql_where=text(f"status = '{status}'"))
        for status in ("running", "queued")
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str | None] = mapped_column(String(200))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    trigger: Mapped[str] = mapped_column(String(20))  # cli webhook schedule
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="running")  # queued running succeeded failed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    log_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    epoch: Mapped[int | None] = mapped_column(Integer)  # epochs finished, while training
    loss: Mapped[float | None] = mapped_column(Float)  # the last batch's (training) or epoch's mean loss


class AnnotationEvent(Base):
    """What a Label Studio webhook reported: an annotation created, updated
    or deleted in a project (``scope``); retraining counts them."""

    __tablename__ = "annotation_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(40))
    annotation_id: Mapped[int | None] = mapped_column(BigInteger)
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Score(Base):
    """Per image and model version, a named number (uncertainty, entropy, ...)."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("image_id", "model_version_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
