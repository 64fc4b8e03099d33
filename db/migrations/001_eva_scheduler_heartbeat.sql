-- The eva_scheduler_heartbeat table exactly as ../shared/seed describes it, with Supabase's roles, grants and
-- both RLS policies. Idempotent: every statement checks before it creates, so running it twice is harmless.
-- For the embedded default, tests, docker-compose and anyone starting from nothing; never run against a
-- database where another application already owns the table.

DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
  -- The API's login role, as Supabase's: no rights of its own, it only switches into the roles above.
  -- Its password is set by whoever deploys it (the embedded default and docker-compose do it for you).
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
    CREATE ROLE authenticator LOGIN NOINHERIT;
  END IF;
END
$roles$;

GRANT authenticated TO authenticator;
GRANT service_role TO authenticator;

CREATE TABLE IF NOT EXISTS public.eva_scheduler_heartbeat (
  id integer NOT NULL DEFAULT 1,
  instance_id text NOT NULL,
  started_at timestamp with time zone NOT NULL DEFAULT now(),
  last_poll_at timestamp with time zone,
  next_poll_at timestamp with time zone,
  poll_count integer NOT NULL DEFAULT 0,
  dispatch_count integer NOT NULL DEFAULT 0,
  error_count integer NOT NULL DEFAULT 0,
  circuit_breaker_state text DEFAULT 'CLOSED'::text,
  paused_reason text,
  status text NOT NULL DEFAULT 'running'::text,
  metadata jsonb DEFAULT '{}'::jsonb,
  updated_at timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT eva_scheduler_heartbeat_pkey PRIMARY KEY (id),
  CONSTRAINT eva_scheduler_heartbeat_id_check CHECK ((id = 1)),
  CONSTRAINT eva_scheduler_heartbeat_status_check
    CHECK ((status = ANY (ARRAY['running'::text, 'stopping'::text, 'stopped'::text])))
);

ALTER TABLE public.eva_scheduler_heartbeat ENABLE ROW LEVEL SECURITY;

DO $policies$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_policy
    WHERE polrelid = 'public.eva_scheduler_heartbeat'::regclass
      AND polname = 'eva_scheduler_heartbeat_authenticated_select'
  ) THEN
    CREATE POLICY eva_scheduler_heartbeat_authenticated_select ON public.eva_scheduler_heartbeat
      FOR SELECT TO authenticated USING (true);
  END IF;
  IF NOT EXISTS (
    SELECT 1 FROM pg_policy
    WHERE polrelid = 'public.eva_scheduler_heartbeat'::regclass
      AND polname = 'eva_scheduler_heartbeat_service_role_all'
  ) THEN
    CREATE POLICY eva_scheduler_heartbeat_service_role_all ON public.eva_scheduler_heartbeat
      FOR ALL TO service_role USING (true) WITH CHECK (true);
  END IF;
END
$policies$;

-- Supabase's default grants: the API roles get wide table privileges and RLS is what really limits them.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON TABLE public.eva_scheduler_heartbeat TO anon, authenticated, service_role;
