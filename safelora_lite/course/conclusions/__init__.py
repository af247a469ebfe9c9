"""Each notebook's conclusions, computed: numbers in, sentences out, by the one rule of comparison/verdicts.

A notebook's "what the numbers say" cell calls its module here and prints the lines; it never types a
claim. Every function returns (record, lines): the figures and verdicts the notebook records, and the
sentences it prints. tests/test_conclusions.py runs each function on crafted numbers that must
produce each of its branches.
"""
