"""The results database (DuckDB): the only code that writes it."""
