"""The schema's history, one Alembic revision per file in versions/ (run by memory.migrations,
on every store when it is opened; forward only).

Adding a migration: copy the newest file of versions/ to `rNNNN_<what>.py`, with
`revision = "NNNN"` (the next number) and `down_revision` the newest one's, and write its
`upgrade()`: usually `run_ddl(sqlite=..., postgresql=...)` with the change in each dialect
(types as in r0001_initial.py), or Python with `current_tx()` where the change depends on the
store's rows. Then test it on a store of the previous version (tests/memory/test_migrations.py).
Numbers, not Alembic's random ids: the schema version a store and a backup report is the
revision as a number.
"""
