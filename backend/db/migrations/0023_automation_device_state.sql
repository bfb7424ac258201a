-- 0023: device-state rule state per (automation, device), so app replicas hand it over (issue #14).
-- An engine writes a row when a device's state changes (it fires and disarms, it re-arms), only
-- for the devices whose values it ingests, and reads a device's rows when it sees that device
-- for the first time; replicas no longer overwrite each other's devices in automation.state.
CREATE TABLE automation_device_state (
    automation_id  bigint NOT NULL REFERENCES automation (id) ON DELETE CASCADE,
    device_id      bigint NOT NULL,
    disarmed       boolean NOT NULL DEFAULT false,
    last_fired     double precision,
    PRIMARY KEY (automation_id, device_id)
);
CREATE INDEX automation_device_state_device_idx ON automation_device_state (device_id);

-- The state kept in automation.state before (one JSON object an automation) moves to the rows.
INSERT INTO automation_device_state (automation_id, device_id, disarmed, last_fired)
SELECT s.automation_id, s.device_id, bool_or(s.disarmed), max(s.last_fired)
FROM (
    SELECT a.id AS automation_id, d.value::bigint AS device_id, true AS disarmed, NULL::double precision AS last_fired
    FROM automation a, jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(a.state -> 'disarmed') = 'array' THEN a.state -> 'disarmed' ELSE '[]'::jsonb END) d
    WHERE d.value ~ '^[0-9]{1,18}$'
    UNION ALL
    SELECT a.id, l.key::bigint, false, (l.value #>> '{}')::double precision
    FROM automation a, jsonb_each(
        CASE WHEN jsonb_typeof(a.state -> 'last') = 'object' THEN a.state -> 'last' ELSE '{}'::jsonb END) l
    WHERE l.key ~ '^[0-9]{1,18}$' AND jsonb_typeof(l.value) = 'number'
) s
GROUP BY s.automation_id, s.device_id;
