"""Durable storage: SQLAlchemy Core tables, engines for SQLite and PostgreSQL, Alembic migrations."""
