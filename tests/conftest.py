from __future__ import annotations

import pytest

pytest_plugins = ["conftest_postgres"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
