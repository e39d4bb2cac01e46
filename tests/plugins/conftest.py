"""The example plugin has its own tests (run by tests/test_plugin.py against the installed
plugin), not collected with kpisync's own."""

collect_ignore = ["kpisync-jsonfile"]
