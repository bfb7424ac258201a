-- 0008: packed history. A raw row costs about 100 bytes with its index; once a day is over
-- and no longer written to, the maintenance job packs each (device, pin, UTC hour) of it into
-- one segment row: microsecond offsets and values as arrays, about 16 bytes a point. Reads
-- go through history_points(), which returns raw and packed points alike.

CREATE TABLE history_packed (
    device_id  integer NOT NULL,
    pin        smallint NOT NULL,
    hour       timestamptz NOT NULL,   -- the segment's UTC hour
    first_ts   timestamptz NOT NULL,
    last_ts    timestamptz NOT NULL,
    offsets    bigint[] NOT NULL,      -- microseconds after hour, ascending
    "values"   double precision[],     -- NULL when no point of the segment has a number
    texts      text[],                 -- NULL when no point of the segment has a text
    CHECK (cardinality(offsets) > 0)
) PARTITION BY RANGE (hour);
CREATE TABLE history_packed_default PARTITION OF history_packed DEFAULT;
CREATE INDEX history_packed_device_pin_hour_idx ON history_packed (device_id, pin, hour);

-- Every stored point of one datastream in [p_start, p_end), in no particular order. A single
-- SELECT in a STABLE SQL function: the planner inlines it, so callers' conditions and the
-- indexes of both tables apply as if the query were written out.
CREATE FUNCTION history_points(p_device bigint, p_pin bigint, p_start timestamptz, p_end timestamptz)
RETURNS TABLE (ts timestamptz, value double precision, text_value text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT h.ts, h.value, h.text_value FROM history h
    WHERE h.device_id = p_device AND h.pin = p_pin AND h.ts >= p_start AND h.ts < p_end
    UNION ALL
    SELECT u.ts, u.value, u.text_value
    FROM history_packed p
    CROSS JOIN LATERAL (
        SELECT p.hour + o * interval '1 microsecond' AS ts, v AS value, t AS text_value
        FROM unnest(p.offsets, p."values", p.texts) AS x(o, v, t)
    ) u
    WHERE p.device_id = p_device AND p.pin = p_pin
      AND p.hour < p_end AND p.hour > p_start - interval '1 hour'
      AND u.ts >= p_start AND u.ts < p_end
$$;
