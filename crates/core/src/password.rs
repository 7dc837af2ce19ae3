//! Password policy (length, not containing the e-mail local part, not a common password).
