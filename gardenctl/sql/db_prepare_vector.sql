-- gardenctl db prepare: the pgvector extension (type `vector`), in the `extensions` schema like Supabase.
-- Run by gardenctl only when pg_available_extensions lists `vector` on the primary. The package providing it
-- (e.g. PGDG's postgresql-15-pgvector) must be installed on EVERY database node: a replica without it cannot serve
-- the type after a failover.
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;
