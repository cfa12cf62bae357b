-- The tables a backup service keeps, and backdex-server follows
-- (`--follow`). One column per field of SEMANTICS §1, named exactly as the
-- field; the sharing of a backup is a row per destination project.
--
--   psql -d DATABASE -f server/sql/schema.sql
--
-- Timestamps are `timestamp` (without time zone) holding UTC to the
-- microsecond, as the records carry them. The opaque parts are `jsonb`:
-- their key order is not kept by PostgreSQL, so backdex echoes them back
-- in jsonb's order (shorter keys first, then bytewise).

CREATE TABLE backups (
    id                    text PRIMARY KEY
                          CHECK (octet_length(id) BETWEEN 1 AND 255),
    checkpoint_id         text NOT NULL,
    project_id            text NOT NULL,
    enterprise_project_id text NOT NULL DEFAULT '0',
    name                  text NOT NULL,
    description           text NOT NULL DEFAULT '',
    status                text NOT NULL
                          CHECK (status IN ('waiting_protect', 'protecting', 'available',
                                            'waiting_restore', 'restoring', 'error',
                                            'waiting_delete', 'deleting', 'deleted')),
    resource_id           text NOT NULL,
    resource_name         text NOT NULL DEFAULT '',
    resource_type         text NOT NULL,
    resource_az           text NOT NULL DEFAULT '',
    resource_size         bigint NOT NULL DEFAULT 0 CHECK (resource_size >= 0),
    image_type            text NOT NULL DEFAULT 'backup'
                          CHECK (image_type IN ('backup', 'replication')),
    policy_id             text,
    vault_id              text,
    provider_id           text,
    parent_id             text,
    dec                   boolean NOT NULL DEFAULT false,
    created_at            timestamp NOT NULL,
    updated_at            timestamp NOT NULL,
    protected_at          timestamp,
    expired_at            timestamp,
    extend_info           jsonb NOT NULL DEFAULT '{}'
                          CHECK (jsonb_typeof(extend_info) = 'object'),
    backup_data           jsonb NOT NULL DEFAULT '{}'
                          CHECK (jsonb_typeof(backup_data) = 'object'),
    replication_records   jsonb NOT NULL DEFAULT '[]'
                          CHECK (jsonb_typeof(replication_records) = 'array'),
    children              jsonb NOT NULL DEFAULT '[]'
                          CHECK (jsonb_typeof(children) = 'array')
);

-- The projects a backup is shared to (a record's `members`), one row each.
CREATE TABLE backup_members (
    backup_id       text REFERENCES backups (id) ON DELETE CASCADE,
    dest_project_id text,
    status          text NOT NULL CHECK (status IN ('pending', 'accept', 'reject')),
    PRIMARY KEY (backup_id, dest_project_id)
);

-- What backdex-server follows (`--publication`, default `backdex`). A
-- delete or an update names its row in the stream by the primary key
-- (REPLICA IDENTITY DEFAULT).
CREATE PUBLICATION backdex FOR TABLE backups, backup_members;
