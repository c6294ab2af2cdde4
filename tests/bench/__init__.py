"""The benchmark (`make bench`): seed data, a reference app, wrk scripts and the runner."""
