-- Wake-ups that do not tax the application's inserts: the notify trigger of 002 notifies only
-- while some passportd is armed, i.e. idle and waiting for a notification.
--
-- Why: PostgreSQL serialises the commits of every transaction that sent a notification (a
-- cluster-wide lock taken at commit keeps notifications in commit order), so a trigger that
-- notifies on every INSERT makes concurrent writers queue behind each other at commit and lose
-- group commit. With 8 writers and durable commits that cost the application two thirds of its
-- insert rate. A busy daemon does not need the notifications (it looks again by itself as long as
-- it finds work), and no notification is needed where no daemon listens, so the trigger now asks
-- first whether anyone is waiting.
--
-- The gate is an advisory lock, class 1347895627 ('PWAK', LOCK_CLASS_WAKE in lib/claim.h),
-- key 0, so it is per database:
--   - An armed daemon holds it EXCLUSIVE, as a session lock of its LISTEN connection
--     (pg_advisory_lock). It arms when a look for work found nothing, and disarms
--     (pg_advisory_unlock) as soon as a notification reaches it. At most one daemon holds it.
--     Every daemon LISTENs whether it holds the lock or not, so one armed daemon is enough to wake
--     them all; the others try again now and then (each try waits at most lock_timeout, 100 ms:
--     a lock request that waited for hours would hold back vacuum's horizon all that time).
--   - The trigger probes it with pg_try_advisory_xact_lock_shared, which never waits. It fails
--     only when a daemon holds the lock or is queued for it: then the statement notifies. When it
--     succeeds nobody is waiting, and the inserting transaction keeps the shared lock until it
--     ends, without notifying. Writers' shared locks do not conflict with each other, so writers
--     never wait on the gate or on one another.
--
-- Why nothing is lost: a daemon that arms waits, inside pg_advisory_lock, until every transaction
-- that took the shared lock without notifying has committed or rolled back; it then looks for due
-- entries once more (with a snapshot taken after that), and any transaction that probes later
-- fails its probe and notifies. A daemon that dies releases the lock with its session, so its armed
-- state ends with it (a daemon whose machine vanishes is found out by TCP keepalives on its LISTEN
-- connection; until then inserts notify in vain, as they always did). An entry committed while no
-- daemon was armed is found by a daemon's next look (a daemon that finds a stream of work looks
-- again within 100 ms, and arms once the stream thins out), or by the poll at worst. Where no daemon runs (or only `--no-listen` daemons), nobody
-- holds the lock and the trigger never notifies.
--
-- Why a lock and not a flag in a table: the trigger would have to read the flag on every insert
-- and update it (a row lock, a new row version, WAL) to disarm, and an armed flag left by a crashed
-- daemon would need an expiry; a table would also be one more object to close to Supabase's API
-- roles. The lock costs the trigger one entry in the lock table, which never waits, and it dies
-- with its daemon's session.
--
-- Privileges: the function runs with the rights of the inserting role (no SECURITY DEFINER: it
-- needs nothing beyond the two functions PostgreSQL grants to PUBLIC) and names them with their
-- schema, so a search_path of the caller's cannot redirect them. Setting search_path on the
-- function instead would cost a configuration change on every call.
CREATE OR REPLACE FUNCTION passport_entries_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(1347895627, 0) THEN
        PERFORM pg_catalog.pg_notify('passport_entries', '');
    END IF;
    RETURN NULL;
END
$$;
