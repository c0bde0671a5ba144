-- gardenctl migrate-phase (check rls-enabled): the tables the API roles can reach, and whether row-level security is
-- on. "Reach" = one of the roles (default anon, authenticated: the roles a JWT selects in PostgREST, storage-api and
-- the GardenOS backend) has SELECT, INSERT, UPDATE or DELETE on the table, directly or through PUBLIC. Supabase's
-- default privileges grant ALL on every new table in public to these roles, so in practice: every table in public.
-- Parameters: %(schemas)s text[], %(roles)s text[] (roles that do not exist are ignored).
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       c.relrowsecurity AS rls_enabled,
       string_agg(r.rolname, ',' ORDER BY r.rolname) AS reachable_by
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_roles r ON r.rolname = ANY(%(roles)s)
WHERE c.relkind IN ('r', 'p')
  AND n.nspname = ANY(%(schemas)s)
  AND has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
GROUP BY n.nspname, c.relname, c.relrowsecurity
ORDER BY n.nspname, c.relname;
