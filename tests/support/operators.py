"""An operator's own login on a stack's database, a member of one_ops and nothing else."""

import contextlib
import uuid
from collections.abc import AsyncIterator

from shared import db
from tests.conftest import Stack


@contextlib.asynccontextmanager
async def operator_login(stack: Stack) -> AsyncIterator[str]:
    """The URL of a new login role in ``one_ops``, dropped afterwards. The database must be
    provisioned (``one_ops`` made); roles are the cluster's, so each test makes its own."""
    name = f"operator_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    admin = await stack.admin()
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {db.OPS_ROLE}")
        try:
            services = stack.services
            yield (
                f"postgresql://{name}:{password}@{services.pg_host}:{services.pg_port}"
                f"/{stack.database}"
            )
        finally:
            await admin.execute(f"DROP ROLE {name}")
    finally:
        await admin.close()
