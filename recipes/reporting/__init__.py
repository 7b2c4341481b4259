"""Showing results: tables, the HTML report, figures, metric agreement (plain data in, files out)."""
