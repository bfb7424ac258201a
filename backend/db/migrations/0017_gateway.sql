-- 0017: Blynk's MQTT Gateway API. A template's "Enable for Gateway API": the token of one of
-- its devices, with the MQTT user name mgmt_device, logs a gateway in for that device's
-- organization.

ALTER TABLE template ADD COLUMN gateway_enabled boolean NOT NULL DEFAULT false;
