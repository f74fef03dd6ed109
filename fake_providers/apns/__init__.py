"""The APNs look-alike: a sans-IO core under an in-memory and an HTTP/2 front end."""
