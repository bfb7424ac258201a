-- 0004: rollups of history. Every numeric point lands in a per-minute and a per-hour bucket
-- (min, max, sum, count, last) as it is ingested, so long ranges are read from a few
-- thousand rows instead of millions. Partitioned by month; the maintenance job creates
-- partitions ahead and drops expired ones.

CREATE TABLE history_minute (
    device_id  integer NOT NULL,
    pin        smallint NOT NULL,
    bucket     timestamptz NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    sum        double precision NOT NULL,
    count      integer NOT NULL,
    last       double precision NOT NULL,
    last_ts    timestamptz NOT NULL,
    PRIMARY KEY (device_id, pin, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE history_minute_default PARTITION OF history_minute DEFAULT;

CREATE TABLE history_hour (LIKE history_minute INCLUDING ALL) PARTITION BY RANGE (bucket);
CREATE TABLE history_hour_default PARTITION OF history_hour DEFAULT;
