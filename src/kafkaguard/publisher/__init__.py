"""Publishing events: the four publish modes and the publisher dead-letter store."""
