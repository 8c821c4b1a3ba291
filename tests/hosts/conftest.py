from tests.hosts.fixtures import stranger, two_minis  # noqa: F401
