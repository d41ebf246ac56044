"""Result records: the JSON schema, atomic writes and reads, and the typed `Record` every reader goes
through; the results store's entries (entries.py) and pruning-aware studies (studies.py). May import: core."""
