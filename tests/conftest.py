pytest_plugins = ["kafkaguard.testing.fixtures"]
