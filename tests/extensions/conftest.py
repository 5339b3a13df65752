"""The `extension` marker: tests that add a search space / evaluation from the test folder only."""


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    config.addinivalue_line("markers", "extension: adds plug-ins (a space, an evaluation) from tests/ only")
