-- 0019: integration credentials (issue #14 item 3). An OAuth client that "may use MQTT" logs in
-- to the broker as integration:<client id> with its secret and gets its organization's own
-- MQTT namespace (README, "Bridging and integrations").

ALTER TABLE oauth_client ADD COLUMN mqtt_enabled boolean NOT NULL DEFAULT false;
