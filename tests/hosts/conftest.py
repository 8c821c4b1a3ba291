from tests.hosts.fixtures import two_minis  # noqa: F401
