"""The catalog database: connection and lock policy, migrations, quoting."""
