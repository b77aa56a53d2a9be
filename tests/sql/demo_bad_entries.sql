-- A few bad entries for the demo, one per kind of failure the daemon must isolate.
INSERT INTO passport_entries (user_id, mediaid_id, event_type, event_category, payload, affects_systems, "timestamp")
VALUES
    -- an unknown system name: permanent
    (passport_test_uuid('user-1'), NULL, 'player.track_played', 'interaction', '{}', '{mediaid,billing}', '2026-03-01'),
    -- a payload that is not an object: permanent
    (passport_test_uuid('user-2'), NULL, 'player.track_played', 'interaction', '[1, 2, 3]', '{}', '2026-03-01'),
    -- a money event with a fractional amount: permanent
    (passport_test_uuid('user-3'), NULL, 'concierto.ticket_purchased', 'transaction', '{"amount_cents": 12.5}', '{}', '2026-03-01'),
    -- the DNA row of another user: permanent
    (passport_test_uuid('user-4'), passport_test_uuid('fan-row-5'), 'player.track_played', 'interaction', '{}', '{}', '2026-03-01'),
    -- a user who has no media_ids row yet: retried later
    (passport_test_uuid('user-without-profile'), NULL, 'player.track_played', 'interaction', '{}', '{}', '2026-03-01'),
    -- no user at all, for a mediaid event: permanent
    (NULL, NULL, 'player.track_completed', 'interaction', '{}', '{mediaid}', '2026-03-01'),
    -- a target whose entity vector holds NaN: permanent
    (passport_test_uuid('user-6'), NULL, 'player.track_played', 'interaction',
     jsonb_build_object('trackId', passport_test_uuid('poisoned-track')::text), '{}', '2026-03-01');

INSERT INTO entity_dna (entity_type, entity_id, embedding)
SELECT 'track', passport_test_uuid('poisoned-track'),
       array_fill('NaN'::real, ARRAY[1536])
ON CONFLICT DO NOTHING;
