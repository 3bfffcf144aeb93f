"""In-memory stores that record state, one per worker, each satisfying its worker's store
Protocol (``services/<worker>/ports.py``): the handlers run on them in tests/unit, and
tests/integration/test_fake_stores.py (test_fake_account_store.py for account_manager's)
checks each against its Postgres store, call for call."""
