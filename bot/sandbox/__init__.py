"""Local stand-ins of the upstream APIs, served on 127.0.0.1 for tests, benchmarks and `demo`."""
