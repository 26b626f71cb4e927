"""dailyfeed's activity service: a consumer that records members' activities, and their API."""
