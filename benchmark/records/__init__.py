"""Result records: the JSON schema, atomic writes and reads, and the typed `Record` every reader goes
through. May import: core."""
