"""Codebase analysis: find direct provider-SDK calls in TS/JS (tree-sitter) and Python (ast), plan the migration.

Pure code, no Prefect: `walk` picks files, `javascript`/`python` parse them against the tables in `sdks`,
`plan` orders the work. The analyzed code is only read, never imported or executed.
"""
