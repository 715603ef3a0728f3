"""pytest puts this directory on sys.path, so the suites import their helpers from hostlib."""
