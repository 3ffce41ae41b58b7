"""The database itself refuses to change or remove audit rows, whatever the client (a bug, the admin, psql).

PostgreSQL: a row trigger refuses UPDATE and DELETE; a statement trigger refuses TRUNCATE unless the
session sets `slipway.audit_allow_truncate = on`. Only test databases get that setting by default:
Django's test runner empties every table with one TRUNCATE between transactional tests. A retention
purge in production is a deliberate DBA operation (disable the trigger as the table's owner).
SQLite (`make run` without DATABASE_URL) gets the UPDATE/DELETE triggers; it has no TRUNCATE.
"""

from django.db import migrations
from django.db.backends.base.creation import TEST_DATABASE_PREFIX

TABLES = ["audit_auditevent", "audit_auditreview"]

POSTGRES_FUNCTIONS = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit entries are never changed or deleted; record a new entry instead.';
END;
$$;
CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('slipway.audit_allow_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: TRUNCATE of % is refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def create_triggers(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_FUNCTIONS, params=None)  # "%" is plpgsql here, not a placeholder
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
            )
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate()"
            )
        name = connection.settings_dict["NAME"]
        if name.startswith(TEST_DATABASE_PREFIX):
            quoted = connection.ops.quote_name(name)
            schema_editor.execute(f"ALTER DATABASE {quoted} SET slipway.audit_allow_truncate = 'on'")
            schema_editor.execute("SET slipway.audit_allow_truncate = 'on'")
    elif connection.vendor == "sqlite":
        for table in TABLES:
            for operation in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: {operation} is refused'); END"
                )


def drop_triggers(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_truncate()")
    elif connection.vendor == "sqlite":
        for table in TABLES:
            for operation in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers, elidable=False)]
