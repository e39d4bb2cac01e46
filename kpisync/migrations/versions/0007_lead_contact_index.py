"""leads by converted contact: the KPI join from a contact's activities to the lead it came from

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_leads_source_converted_contact', 'leads',
                    ['source', 'converted_contact_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_leads_source_converted_contact', table_name='leads')
