"""The journal: the SQLite book (schema, migrations, the ``Journal`` port's implementation)."""
