"""IOCs: processes that own an instrument and serve it over Channel Access."""
