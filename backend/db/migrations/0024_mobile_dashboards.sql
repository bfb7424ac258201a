-- 0024: a template's mobile dashboard (issue #19 item 2), Blynk's "Mobile dashboard" of the
-- template editor: an ordered list of widgets on a phone-width grid of 4 columns (type, width,
-- height, bound datastream pin, settings) as one JSON document, shown in the app (/app) for
-- every device of the template. Kept apart from the web dashboard (template_dashboard): the two
-- are edited and laid out separately, as on Blynk.
CREATE TABLE template_mobile_dashboard (
    template_id BIGINT PRIMARY KEY REFERENCES template(id) ON DELETE CASCADE,
    widgets     JSONB NOT NULL DEFAULT '[]'::jsonb,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by  BIGINT REFERENCES app_user(id) ON DELETE SET NULL
);
