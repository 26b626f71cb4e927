"""In-memory fakes of kafkaguard's ports (each beside the contract its real adapter passes too)."""
