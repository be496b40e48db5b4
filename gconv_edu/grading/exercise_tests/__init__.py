"""The autograder's tests, one module per exercise; each declares ``EXERCISE`` and uses the ``student`` fixture."""
