"""In-memory fakes of kafkaguard's ports, for unit tests (public names are exported by :mod:`kafkaguard.testing`)."""
