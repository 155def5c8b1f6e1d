"""Starting real servers for the tests and the benchmarks: one launcher, one ``free_port``."""
