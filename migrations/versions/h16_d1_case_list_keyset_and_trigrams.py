"""cases: indexes for the case list at a million (keyset sort keys ending in the id, the
navigation's due count covered; on PostgreSQL pg_trgm GIN indexes for the substring search
of customers)

Revision ID: h16_d1
Revises: h16_f1
Create Date: 2026-12-07 22:20:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'h16_d1'
down_revision = 'h16_f1'
branch_labels = None
depends_on = None

# (name, columns before, columns after)
REBUILT = (
    ('ix_case_status_due', ['status', 'due_at'], ['status', 'due_at', 'id']),
    ('ix_case_event_created', ['event_id', 'created_at'], ['event_id', 'created_at', 'id']),
    ('ix_case_created', ['created_at'], ['created_at', 'id']),
    # the navigation's count of one's due cases, shown on every staff page
    ('ix_case_assignee_status', ['assignee_id', 'status'], ['assignee_id', 'status', 'due_at']),
)
# The search's LIKE '%…%' on lower(name), lower(email) and lower(company); the model does
# not declare them (PostgreSQL only; autogenerate skips expression indexes).
TRIGRAM = ('name', 'email', 'company')
# Queries under three characters (a Chinese given name) have no trigram: every character
# and pair of characters of name and company, in a GIN index each.
GRAMS = ('name', 'company')
GRAMS_FUNCTION = """
CREATE OR REPLACE FUNCTION case_search_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT g), '{}') FROM (
    SELECT substr(t, i, 1) AS g FROM generate_series(1, char_length(t)) AS i
    UNION ALL
    SELECT substr(t, i, 2) FROM generate_series(1, char_length(t) - 1) AS i) AS grams
$$"""


def upgrade():
    for name, _before, after in REBUILT:
        with op.batch_alter_table('case_file') as batch_op:
            batch_op.drop_index(name)
            batch_op.create_index(name, after, unique=False)
    with op.batch_alter_table('case_file') as batch_op:
        batch_op.create_index('ix_case_due', ['due_at', 'id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        for column in TRIGRAM:
            op.execute(f'CREATE INDEX ix_customer_{column}_trgm ON customer '
                       f'USING gin (lower({column}) gin_trgm_ops)')
        op.execute(GRAMS_FUNCTION)
        # the order ref's start, case-insensitive (LIKE 'x%' needs the pattern opclass when
        # the collation is not C)
        op.execute('CREATE INDEX ix_case_order_ref_lower ON case_file '
                   '(lower(order_ref) text_pattern_ops)')
        for column in GRAMS:
            op.execute(f'CREATE INDEX ix_customer_{column}_grams ON customer '
                       f'USING gin (case_search_grams(lower({column})))')


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for column in TRIGRAM:
            op.execute(f'DROP INDEX IF EXISTS ix_customer_{column}_trgm')
        for column in GRAMS:
            op.execute(f'DROP INDEX IF EXISTS ix_customer_{column}_grams')
        op.execute('DROP FUNCTION IF EXISTS case_search_grams(text)')
        op.execute('DROP INDEX IF EXISTS ix_case_order_ref_lower')
        # the extension stays: other databases' objects may use it, and dropping it needs
        # more rights than creating it did
    with op.batch_alter_table('case_file') as batch_op:
        batch_op.drop_index('ix_case_due')
    for name, before, _after in REBUILT:
        with op.batch_alter_table('case_file') as batch_op:
            batch_op.drop_index(name)
            batch_op.create_index(name, before, unique=False)
