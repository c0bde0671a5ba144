-- gardenctl db prepare: what an external PostgreSQL (Patroni) needs before the Supabase components and the GardenOS
-- services start. The Supabase images' own init scripts (supabase/postgres migrations/db/init-scripts) do this on a
-- database they create; on an external database nobody does, so gardenctl does.
--
-- Idempotent: every statement creates only what is missing and re-asserts attributes and grants, so running it twice
-- changes nothing and never fails on "already exists". gardenctl runs it in ONE transaction, as a superuser, on the
-- primary (through HAProxy's read-write port), after taking an advisory lock so two runs cannot race.
-- Passwords are NOT here: gardenctl sets them afterwards, as SCRAM verifiers computed locally (the clear text never
-- reaches the server or its logs). The database `kratos` is created outside the transaction (CREATE DATABASE cannot
-- run in one). The pgvector extension is db_prepare_vector.sql, run only when the server has it.
--
-- Roles (as Supabase defines them, plus the GardenOS ones the manifests use):
--   supabase_admin          LOGIN SUPERUSER ...   realtime, postgres-meta, studio connect as it (Supabase: superuser)
--   authenticator           LOGIN NOINHERIT       PostgREST connects as it and switches to anon/authenticated/service_role
--   anon, authenticated     NOLOGIN NOINHERIT     the API roles of the JWT `role` claim
--   service_role            NOLOGIN NOINHERIT BYPASSRLS
--   supabase_auth_admin     LOGIN NOINHERIT CREATEROLE   GoTrue; owns schema auth
--   supabase_storage_admin  LOGIN NOINHERIT CREATEROLE   storage-api; owns schema storage, switches to the API roles
--   gardenos_app            LOGIN NOINHERIT       the FastAPI backend (serves /rest/v1 from phase 2: switches roles)
--   kratos                  LOGIN                 Ory Kratos (phase 3), owns database kratos
-- Deliberately NOT done (Supabase's image does it): `GRANT supabase_admin TO authenticator` - a JWT with
-- role=supabase_admin would then run as a superuser through the API.

SELECT pg_advisory_xact_lock(hashtext('gardenctl db prepare'));

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('supabase_admin'), ('authenticator'), ('anon'), ('authenticated'), ('service_role'),
      ('supabase_auth_admin'), ('supabase_storage_admin'), ('gardenos_app'), ('kratos')) AS t(name)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I', r.name);
    END IF;
  END LOOP;
END
$$;

ALTER ROLE supabase_admin         WITH LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS;
ALTER ROLE authenticator          WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE anon                   WITH NOLOGIN NOINHERIT;
ALTER ROLE authenticated          WITH NOLOGIN NOINHERIT;
ALTER ROLE service_role           WITH NOLOGIN NOINHERIT BYPASSRLS;
ALTER ROLE supabase_auth_admin    WITH LOGIN NOINHERIT CREATEROLE NOREPLICATION;
ALTER ROLE supabase_storage_admin WITH LOGIN NOINHERIT CREATEROLE NOREPLICATION;
ALTER ROLE gardenos_app           WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEROLE NOREPLICATION;
ALTER ROLE kratos                 WITH LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION;

-- Who may switch to the API roles (SET ROLE after verifying a JWT).
GRANT anon, authenticated, service_role TO authenticator;
GRANT anon, authenticated, service_role TO supabase_storage_admin;
GRANT anon, authenticated, service_role TO gardenos_app;

-- Settings Supabase gives its roles.
ALTER ROLE supabase_admin         SET search_path TO "$user", public, auth, extensions;
ALTER ROLE supabase_auth_admin    SET search_path TO auth;
ALTER ROLE supabase_storage_admin SET search_path TO storage;
ALTER ROLE anon                   SET statement_timeout TO '3s';
ALTER ROLE authenticated          SET statement_timeout TO '8s';

-- Schemas. An existing schema keeps its owner; the component that migrates it gets every privilege on it.
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION supabase_auth_admin;
CREATE SCHEMA IF NOT EXISTS storage AUTHORIZATION supabase_storage_admin;
CREATE SCHEMA IF NOT EXISTS _realtime AUTHORIZATION supabase_admin;

GRANT ALL ON SCHEMA auth TO supabase_auth_admin;
GRANT ALL ON SCHEMA storage TO supabase_storage_admin WITH GRANT OPTION;
GRANT ALL ON SCHEMA _realtime TO supabase_admin;
GRANT USAGE ON SCHEMA auth, storage, extensions, public TO anon, authenticated, service_role;
GRANT USAGE, CREATE ON SCHEMA public TO gardenos_app;

-- GoTrue and storage-api run `CREATE SCHEMA IF NOT EXISTS ...` in their migrations, which needs CREATE on the database.
DO $$
BEGIN
  EXECUTE format('GRANT CREATE ON DATABASE %I TO supabase_auth_admin, supabase_storage_admin', current_database());
END
$$;

-- Tables created in public are reachable through the API (this is why phase 2 checks row-level security).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE gardenos_app IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE gardenos_app IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE gardenos_app IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;

-- Realtime's change feed: the (initially empty) publication it subscribes to.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
    CREATE PUBLICATION supabase_realtime;
  END IF;
END
$$;

-- Extensions Supabase keeps in the `extensions` schema (contrib: part of every PostgreSQL server package).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'uuid-ossp') THEN
    CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA extensions;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pgcrypto') THEN
    CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
  END IF;
END
$$;
