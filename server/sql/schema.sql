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

-- A tenant's virtual shard, as the library's `vshard_of` computes it: the
-- 64-bit FNV-1a hash of the project id's UTF-8 bytes modulo 256. Modulo
-- 256 keeps only the hash's lowest byte, and FNV-1a's lowest byte depends
-- only on the lowest bytes of its basis (0x25) and prime (0xb3): eight-bit
-- arithmetic gives the same number. A cluster node loads its vshards by
-- the index below (server/docs/cluster.md).
CREATE FUNCTION backdex_vshard(project_id text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    bytes bytea := convert_to(project_id, 'UTF8');
    h integer := 37;
BEGIN
    FOR i IN 0 .. length(bytes) - 1 LOOP
        h := ((h # get_byte(bytes, i)) * 179) % 256;
    END LOOP;
    RETURN h;
END
$$;

CREATE INDEX backups_vshard ON backups (backdex_vshard(project_id));

-- A backup's tenant is fixed: a cluster node holds its tenants' records
-- only, so a record moving to another tenant would reach a node that has
-- never seen its members.
CREATE FUNCTION backdex_fixed_project() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.project_id IS DISTINCT FROM OLD.project_id THEN
        RAISE EXCEPTION 'backup %: project_id cannot change (from % to %)',
            OLD.id, OLD.project_id, NEW.project_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER backups_fixed_project BEFORE UPDATE OF project_id ON backups
    FOR EACH ROW EXECUTE FUNCTION backdex_fixed_project();

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
