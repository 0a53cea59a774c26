"""Reports of a cross-validated run: figures (plots), tables, cell drawings, report.md.

Entry point: ``emotionnas.reports.report.write_report(run_dir)``. Nothing is
imported here, so importing a submodule (e.g. the cell drawings) does not pull
in matplotlib for the others.
"""
