-- 0009: the console (issue #6). A template's web dashboard: its widgets (type, grid place and
-- size, bound datastream pin, settings) as one JSON document, rendered for every device of the
-- template. And Blynk's datastream setting "Wait for confirmation from device": a control
-- bound to such a datastream shows "waiting for device" until the device echoes the value.
CREATE TABLE template_dashboard (
    template_id BIGINT PRIMARY KEY REFERENCES template(id) ON DELETE CASCADE,
    widgets     JSONB NOT NULL DEFAULT '[]'::jsonb,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by  BIGINT REFERENCES app_user(id) ON DELETE SET NULL
);

ALTER TABLE datastream ADD COLUMN wait_confirmation BOOLEAN NOT NULL DEFAULT false;
