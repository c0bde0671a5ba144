-- gardenctl db prepare: the checklist. One row per object db_prepare.sql ensures: (kind, name, ok, detail).
-- Read-only; gardenctl runs it before (the plan) and after (the verification) applying db_prepare.sql.
WITH
want_roles(name, login, inherit, bypassrls, superuser) AS (VALUES
  ('supabase_admin',         true,  NULL::boolean, true,  true),
  ('authenticator',          true,  false, NULL::boolean, false),
  ('anon',                   false, false, NULL::boolean, false),
  ('authenticated',          false, false, NULL::boolean, false),
  ('service_role',           false, false, true,  false),
  ('supabase_auth_admin',    true,  false, NULL::boolean, NULL::boolean),
  ('supabase_storage_admin', true,  false, NULL::boolean, NULL::boolean),
  ('gardenos_app',           true,  false, NULL::boolean, false),
  ('kratos',                 true,  NULL::boolean, NULL::boolean, false)
),
roles AS (
  SELECT 'role'::text AS kind, w.name::text AS name,
         r.rolname IS NOT NULL
           AND r.rolcanlogin = w.login
           AND (w.inherit IS NULL OR r.rolinherit = w.inherit)
           AND (w.bypassrls IS NULL OR r.rolbypassrls = w.bypassrls)
           AND (w.superuser IS NULL OR r.rolsuper = w.superuser) AS ok,
         CASE WHEN r.rolname IS NULL THEN 'missing'
              ELSE concat_ws(' ',
                     CASE WHEN r.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
                     CASE WHEN r.rolinherit THEN NULL ELSE 'NOINHERIT' END,
                     CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
                     CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END)
         END AS detail,
         1 AS ord
  FROM want_roles w LEFT JOIN pg_catalog.pg_roles r ON r.rolname = w.name
),
want_members(member, grp) AS (VALUES
  ('authenticator', 'anon'), ('authenticator', 'authenticated'), ('authenticator', 'service_role'),
  ('supabase_storage_admin', 'anon'), ('supabase_storage_admin', 'authenticated'), ('supabase_storage_admin', 'service_role'),
  ('gardenos_app', 'anon'), ('gardenos_app', 'authenticated'), ('gardenos_app', 'service_role')
),
members AS (
  SELECT 'membership', w.member || ' in ' || w.grp,
         EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                 JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                 JOIN pg_catalog.pg_roles u ON u.oid = m.member
                 WHERE g.rolname = w.grp AND u.rolname = w.member),
         '', 2
  FROM want_members w
),
want_schemas(name, admin) AS (VALUES
  ('auth', 'supabase_auth_admin'), ('storage', 'supabase_storage_admin'), ('_realtime', 'supabase_admin'), ('extensions', NULL)
),
schemas AS (
  SELECT 'schema', w.name,
         n.nspname IS NOT NULL AND (w.admin IS NULL OR (
           EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = w.admin)
           AND has_schema_privilege(w.admin, w.name, 'CREATE'))),
         CASE WHEN n.nspname IS NULL THEN 'missing'
              ELSE 'owner ' || pg_catalog.pg_get_userbyid(n.nspowner) END,
         3
  FROM want_schemas w LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = w.name
),
publication AS (
  SELECT 'publication', 'supabase_realtime',
         EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime'),
         COALESCE((SELECT 'owner ' || pg_catalog.pg_get_userbyid(pubowner) FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime'), 'missing'),
         4
),
want_ext(name) AS (VALUES ('uuid-ossp'), ('pgcrypto')),
extensions AS (
  SELECT 'extension', w.name,
         e.extname IS NOT NULL,
         CASE WHEN e.extname IS NOT NULL THEN 'version ' || e.extversion || ' in ' || x.nspname
              WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = w.name) THEN 'missing'
              ELSE 'missing (not available on this server)' END,
         5
  FROM want_ext w
  LEFT JOIN pg_catalog.pg_extension e ON e.extname = w.name
  LEFT JOIN pg_catalog.pg_namespace x ON x.oid = e.extnamespace
),
grants AS (
  SELECT 'grant', 'CREATE on database to ' || g.name,
         EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = g.name)
           AND has_database_privilege(g.name, current_database(), 'CREATE'),
         '', 6
  FROM (VALUES ('supabase_auth_admin'), ('supabase_storage_admin')) AS g(name)
),
databases AS (
  SELECT 'database', 'kratos',
         EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = 'kratos'),
         COALESCE((SELECT 'owner ' || pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = 'kratos'), 'missing'),
         7
)
SELECT kind, name, ok, detail FROM (
  SELECT * FROM roles UNION ALL SELECT * FROM members UNION ALL SELECT * FROM schemas
  UNION ALL SELECT * FROM publication UNION ALL SELECT * FROM extensions UNION ALL SELECT * FROM grants
  UNION ALL SELECT * FROM databases
) AS everything
ORDER BY ord, name;
