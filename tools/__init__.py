"""Scripts that build the environments the tests run in, and draw the
documentation's pictures; run from the repository root
(``python -m tools.draw_dashboard_pictures``).
"""
