-- 0012: a fourth kind of e-mailed link, registration (the platform API's users/register):
-- whoever follows it gets a new organization under the sender's, named after them, and is
-- its Admin (as users/create does, but the person chooses their own name and password).
ALTER TABLE account_token DROP CONSTRAINT account_token_purpose_check;
ALTER TABLE account_token ADD CONSTRAINT account_token_purpose_check
    CHECK (purpose IN ('signup', 'password_reset', 'invitation', 'registration'));
