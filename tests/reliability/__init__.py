"""Reliability and security checks (issue 22): fuzzing, the hostile corpus, fault injection, soak,
output safety. The check functions take their sizes as parameters: the tests here run them small
(the default run) or medium (`-m slow`), bench/reliability.py runs them at full scale and prints
the table of docs/reliability.md."""
