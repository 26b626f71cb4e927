"""dailyfeed's content service: posts and comments; every write emits an event for its author."""
