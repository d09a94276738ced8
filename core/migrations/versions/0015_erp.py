"""the ERP bridge: the embedded ERP's products, warehouses, stock, orders with their lines and
invoices; the one configured ERP connection; contact.erp_ref (unique when set)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

`contact.erp_ref` is added with plain ALTER TABLE statements, not batch mode: on SQLite a batch
rebuild of `contact` would drop its full-text triggers (migration 0012).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.models import IdType, JSONType, UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("contact", sa.Column("erp_ref", sa.String(length=100), nullable=True))
    op.create_index("ix_contact_erp_ref", "contact", ["erp_ref"], unique=True)

    op.create_table(
        "erp_connection",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("settings", JSONType, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_check_at", UTCDateTime(), nullable=True),
        sa.Column("last_check_result", sa.Text(), nullable=True),
        sa.CheckConstraint("id = 1", name="ck_erp_connection_one_row"),
        sa.PrimaryKeyConstraint("id", name="pk_erp_connection"),
    )
    op.create_table(
        "erp_product",
        sa.Column("id", IdType, nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erp_product"),
        sa.UniqueConstraint("sku", name="uq_erp_product_sku"),
    )
    op.create_table(
        "erp_warehouse",
        sa.Column("id", IdType, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erp_warehouse"),
        sa.UniqueConstraint("name", name="uq_erp_warehouse_name"),
    )
    op.create_table(
        "erp_stock",
        sa.Column("id", IdType, nullable=False),
        sa.Column("product_id", IdType, nullable=False),
        sa.Column("warehouse_id", IdType, nullable=False),
        sa.Column("on_hand", sa.Numeric(precision=14, scale=3), nullable=False),
        sa.Column("reserved", sa.Numeric(precision=14, scale=3), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["erp_product.id"],
            name="fk_erp_stock_product_id_erp_product",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["erp_warehouse.id"],
            name="fk_erp_stock_warehouse_id_erp_warehouse",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_erp_stock"),
        sa.UniqueConstraint(
            "product_id", "warehouse_id", name="uq_erp_stock_product_id_warehouse_id"
        ),
    )
    op.create_index("ix_erp_stock_warehouse_id", "erp_stock", ["warehouse_id"])
    op.create_table(
        "erp_order",
        sa.Column("id", IdType, nullable=False),
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("customer_ref", sa.String(length=100), nullable=False),
        sa.Column("contact_id", IdType, nullable=True),
        sa.Column("ordered_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("payment_status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tracking_number", sa.String(length=200), nullable=True),
        sa.Column("tracking_url", sa.String(length=2000), nullable=True),
        sa.Column("carrier", sa.String(length=100), nullable=True),
        sa.Column("shipped_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name="fk_erp_order_contact_id_contact",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_erp_order"),
        sa.UniqueConstraint("number", name="uq_erp_order_number"),
    )
    op.create_index("ix_erp_order_customer", "erp_order", ["customer_ref", "ordered_at"])
    op.create_index("ix_erp_order_contact", "erp_order", ["contact_id", "ordered_at"])
    op.create_table(
        "erp_order_line",
        sa.Column("id", IdType, nullable=False),
        sa.Column("order_id", IdType, nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=3), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["erp_order.id"],
            name="fk_erp_order_line_order_id_erp_order",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_erp_order_line"),
    )
    op.create_index("ix_erp_order_line_order_id", "erp_order_line", ["order_id"])
    op.create_table(
        "erp_invoice",
        sa.Column("id", IdType, nullable=False),
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("order_id", IdType, nullable=True),
        sa.Column("customer_ref", sa.String(length=100), nullable=False),
        sa.Column("issued_at", sa.Date(), nullable=False),
        sa.Column("due_at", sa.Date(), nullable=True),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("amount_due", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["erp_order.id"],
            name="fk_erp_invoice_order_id_erp_order",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_erp_invoice"),
        sa.UniqueConstraint("number", name="uq_erp_invoice_number"),
    )
    op.create_index("ix_erp_invoice_customer", "erp_invoice", ["customer_ref", "issued_at"])
    op.create_index("ix_erp_invoice_order_id", "erp_invoice", ["order_id"])


def downgrade() -> None:
    op.drop_table("erp_invoice")
    op.drop_table("erp_order_line")
    op.drop_table("erp_order")
    op.drop_table("erp_stock")
    op.drop_table("erp_warehouse")
    op.drop_table("erp_product")
    op.drop_table("erp_connection")
    op.drop_index("ix_contact_erp_ref", table_name="contact")
    op.drop_column("contact", "erp_ref")
